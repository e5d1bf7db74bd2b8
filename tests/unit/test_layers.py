"""Imports go downward only, and docs/architecture.md maps every module.

Every module under src/offload belongs to one layer of ``LAYERS`` (top first). A
module may import modules of its own layer and of the layers below it, never of
a layer above: at module level or inside a function alike. Imports under
``if TYPE_CHECKING:`` are left out: they are for the type checker and run
nothing. Importing ``offload.a.b`` also runs the package ``offload.a``, so that
package counts as imported too (the root package ``offload`` excepted: every
import runs it, and it imports nothing at module level).

An upward import that must stay goes in ``ALLOWED_UPWARD`` with the reason.
A new module fails here until it is given a layer (and a line in the module map
of docs/architecture.md).
"""

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "offload"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# Top to bottom. docs/architecture.md lists the same layers, in this order.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "Entry points",
        [
            "offload.management",
            "offload.management.commands",
            "offload.management.commands.offload",
            "offload.management.global_options",
            "offload.management.errors",
            "offload.management.prune",
            "offload.apps",
            "offload.from_tasks_db",
            "offload.testing",
            "offload.testing.kit",
            "offload.testing.running",
            "offload.testing.enqueued",
            "offload.testing.mixin",
            "offload.testing.pytest_plugin",
            "offload.views",
        ],
    ),
    (
        "Operator commands",
        [
            "offload.operations",
            "offload.operations.cli",
            "offload.operations.status",
            "offload.operations.status_text",
            "offload.operations.health",
            "offload.operations.metrics",
        ],
    ),
    (
        "Admin",
        [
            "offload.admin",
            "offload.admin.task_lists",
            "offload.admin.tasks",
            "offload.admin.workflow_fields",
            "offload.admin.dashboard",
            "offload.admin.stats",
            "offload.admin.queues",
            "offload.admin.workers",
            "offload.admin.filters",
            "offload.admin.display",
            "offload.admin.options",
            "offload.admin.backend_choice",
            "offload.admin.security",
            "offload.admin.schedules",
            "offload.admin.bulk",
            "offload.admin.task_operations",
            "offload.admin.audit",
            "offload.admin.paging",
            "offload.admin.list_params",
            "offload.admin.masking",
            "offload.admin.failure",
            "offload.admin.last_error",
            "offload.admin.unmigrated",
        ],
    ),
    (
        "Worker supervisor",
        [
            "offload.embedded",
            "offload.embedded.asgi",
            "offload.embedded.startup",
            "offload.embedded.host",
            "offload.worker.supervisor",
            "offload.worker.groups",
            "offload.worker.reloading",
            "offload.worker.rescue",
            "offload.worker.sampler",
            "offload.worker.pruner",
            "offload.worker.rate_promoter",
            "offload.worker.roles",
            "offload.worker.children",
            "offload.worker.losses",
            "offload.worker.metrics_server",
        ],
    ),
    (
        "Worker task process",
        [
            "offload.worker.process",
            "offload.worker",
            "offload.worker.loop",
            "offload.worker.runner",
            "offload.worker.pools",
            "offload.worker.announcer",
            "offload.worker.execution",
            "offload.worker.leases",
            "offload.worker.outbox",
            "offload.worker.progress_writes",
            "offload.worker.reporting",
            "offload.worker.wakeups",
            "offload.worker.claims",
            "offload.worker.cpu_bound",
            "offload.worker.recycling",
            "offload.worker.config",
            "offload.worker.task_metrics",
        ],
    ),
    (
        "Worker helpers",
        [
            "offload.worker.identity",
            "offload.worker.logs",
            "offload.worker.memory",
            "offload.worker.protocol",
            "offload.worker.titles",
            "offload.worker.heartbeat_file",
        ],
    ),
    (
        "Schedules and checks",
        [
            "offload.schedules.thread",
            "offload.schedules.checks",
            "offload.schedules.sync",
            "offload.schedules.listing",
            "offload.schedules.firing",
            "offload.schedules.targets",
            "offload.schedules.errors",
            "offload.checks",
            "offload.commands",
            "offload.command_tasks",
            "offload.retention",
            "offload.schedules.allowed",
        ],
    ),
    ("Package", ["offload"]),
    ("Backend", ["offload.backend", "offload.workflows"]),
    (
        "Store",
        [
            "offload.store",
            "offload.store.operations",
            "offload.store.depth",
            "offload.store.reads",
            "offload.store.vacuum",
            "offload.store.prune",
            "offload.store.tasks",
            "offload.store.unique",
            "offload.store.dependencies",
            "offload.store.gate",
            "offload.store.rate_gate",
            "offload.store.claim",
            "offload.store.enqueue",
            "offload.store.outcomes",
            "offload.store.rescue",
            "offload.store.workers",
            "offload.store.rows",
            "offload.store.base",
            "offload.store.announce",
            "offload.store.connection",
            "offload.store.wakeup",
            "offload.store.vendor",
        ],
    ),
    ("Models", ["offload.models"]),
    (
        "Task building blocks",
        [
            "offload.results",
            "offload.task",
            "offload.failures",
            "offload.signals",
            "offload.tracing",
            "offload.progress",
            "offload.payload",
            "offload.routers",
        ],
    ),
    ("Configuration", ["offload.conf"]),
    (
        "Definitions",
        [
            "offload.worker_options",
            "offload.embedded_options",
            "offload.schedules",
            "offload.schedules.spec",
            "offload.schedules.registry",
            "offload.retries",
        ],
    ),
    (
        "Leaves",
        [
            "offload.task_options",
            "offload.uniqueness",
            "offload.concurrency",
            "offload.rates",
            "offload.task_keys",
            "offload.tables",
            "offload.online_indexes",
            "offload.limits",
            "offload.suggest",
            "offload.exceptions",
            "offload.states",
        ],
    ),
]

# (importer, imported) -> why the upward import stays. Keep it small.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

MIGRATIONS = "offload.migrations"
# The one module a migration may import, and why: its operations import only
# Django, so a migration that uses them runs the same whatever the models say.
MIGRATIONS_MAY_IMPORT = {"offload.online_indexes"}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = ["offload", *path.relative_to(package).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_modules(package: Path = PACKAGE) -> dict[str, str]:
    """Module name -> source, for every module under ``package``."""
    return {module_name(path, package): path.read_text() for path in sorted(package.rglob("*.py"))}


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def _function_nodes(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    return inside


def imports_of(name: str, source: str, known: set[str], is_package: bool) -> list[Import]:
    """The offload modules ``name`` imports (and the packages those imports run)."""
    tree = ast.parse(source)
    skipped, in_function = _type_checking_nodes(tree), _function_nodes(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a import b`` imports the module a.b when there is one.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            if target != "offload" and not target.startswith("offload."):
                continue
            parts = target.split(".")
            for depth in range(2, len(parts) + 1):  # the packages it runs, then itself
                found.append(
                    Import(name, ".".join(parts[:depth]), node.lineno, id(node) in in_function)
                )
            if target == "offload":
                found.append(Import(name, target, node.lineno, id(node) in in_function))
    return found


def layer_problems(modules: Mapping[str, str], layers: list[tuple[str, list[str]]]) -> list[str]:
    """Modules in no layer, and layer entries that name no module."""
    listed = [module for _title, members in layers for module in members]
    problems = [
        f"{module} is in no layer: add it to LAYERS in tests/unit/test_layers.py (the "
        "layer of the modules it imports or above, below those that import it) and a "
        "line for it to the module map in docs/architecture.md."
        for module in sorted(modules)
        if module not in listed and not module.startswith(MIGRATIONS)
    ]
    problems.extend(
        f"{module} is in LAYERS but no such module exists: remove it from LAYERS."
        for module in listed
        if module not in modules
    )
    problems.extend(
        f"{module} is in more than one layer." for module in sorted(set(listed))
        if listed.count(module) > 1
    )  # fmt: skip
    return problems


def upward_imports(
    modules: Mapping[str, str],
    layers: list[tuple[str, list[str]]],
    allowed: Mapping[tuple[str, str], str],
) -> list[str]:
    """One message per import of a module from a higher layer."""
    rank = {module: index for index, (_title, members) in enumerate(layers) for module in members}
    title = {module: t for t, members in layers for module in members}
    known = set(modules)
    problems: list[str] = []
    for name, source in sorted(modules.items()):
        is_package = any(other.startswith(f"{name}.") for other in known)
        for found in imports_of(name, source, known, is_package):
            if name.startswith(MIGRATIONS) and found.imported not in MIGRATIONS_MAY_IMPORT:
                problems.append(
                    f"{name} line {found.line} imports {found.imported}: a migration "
                    "must not import offload (it runs against historical models)."
                )
                continue
            if name.startswith(MIGRATIONS):
                continue
            if found.imported not in rank or name not in rank:
                continue  # reported by layer_problems
            if rank[found.imported] >= rank[name] or (name, found.imported) in allowed:
                continue
            where = "inside a function" if found.in_function else "at module level"
            problems.append(
                f"{name} ({title[name]}) imports {found.imported} ({title[found.imported]}), "
                f"a higher layer, {where} at line {found.line}. Move the code it needs "
                "down, or list the import in ALLOWED_UPWARD with the reason."
            )
    return problems


def test_every_module_has_one_layer():
    assert layer_problems(read_modules(), LAYERS) == []


def test_imports_go_downward_only():
    assert upward_imports(read_modules(), LAYERS, ALLOWED_UPWARD) == []


def test_every_allowed_upward_import_has_a_reason_and_is_still_there():
    modules = read_modules()
    unrestricted = upward_imports(modules, LAYERS, {})
    for (importer, imported), reason in ALLOWED_UPWARD.items():
        assert reason.strip(), (importer, imported)
        assert any(f"{importer} (" in p and f"imports {imported} (" in p for p in unrestricted), (
            f"ALLOWED_UPWARD lists {importer} -> {imported}, which is no longer an upward "
            "import: remove the entry."
        )


# A small tree of synthetic modules, to show the checks fail when they should.
SYNTHETIC_LAYERS: list[tuple[str, list[str]]] = [
    ("Top", ["offload.top"]),
    ("Middle", ["offload.middle", "offload.pkg", "offload.pkg.inner"]),
    ("Bottom", ["offload.bottom"]),
]


def synthetic(**sources: str) -> dict[str, str]:
    modules = {
        "offload.top": "from offload.middle import thing\n",
        "offload.middle": "from offload import bottom\n",
        "offload.pkg": "",
        "offload.pkg.inner": "from offload.bottom import limit\n",
        "offload.bottom": "limit = 1\n",
    }
    modules.update({name.replace("__", "."): source for name, source in sources.items()})
    return modules


def test_the_synthetic_tree_is_clean():
    modules = synthetic()
    assert layer_problems(modules, SYNTHETIC_LAYERS) == []
    assert upward_imports(modules, SYNTHETIC_LAYERS, {}) == []


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("from offload.top import thing\n", "at module level at line 1"),
        ("import offload.top\n", "at module level at line 1"),
        ("from offload import top\n", "at module level at line 1"),
        ("from . import top\n", "at module level at line 1"),
        ("def f():\n    from offload.top import thing\n", "inside a function at line 2"),
        ("class C:\n    def f(self):\n        import offload.top\n", "inside a function at line 3"),
    ],
)
def test_an_upward_import_fails(source, where):
    problems = upward_imports(synthetic(offload__bottom=source), SYNTHETIC_LAYERS, {})
    assert problems == [
        f"offload.bottom (Bottom) imports offload.top (Top), a higher layer, {where}. "
        "Move the code it needs down, or list the import in ALLOWED_UPWARD with the reason."
    ]


def test_importing_a_module_counts_its_package():
    # offload.pkg.inner is in Middle, so importing it from Bottom runs Middle's package too.
    problems = upward_imports(
        synthetic(offload__bottom="from offload.pkg.inner import x\n"), SYNTHETIC_LAYERS, {}
    )
    assert [p.split(",")[0] for p in problems] == [
        "offload.bottom (Bottom) imports offload.pkg (Middle)",
        "offload.bottom (Bottom) imports offload.pkg.inner (Middle)",
    ]


def test_type_checking_imports_and_allowed_ones_pass():
    type_only = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from offload.top import T\n"
    )
    assert upward_imports(synthetic(offload__bottom=type_only), SYNTHETIC_LAYERS, {}) == []
    upward = synthetic(offload__bottom="def f():\n    from offload.top import thing\n")
    allowed = {("offload.bottom", "offload.top"): "a reason"}
    assert upward_imports(upward, SYNTHETIC_LAYERS, allowed) == []


def test_a_module_in_no_layer_fails_with_what_to_do():
    problems = layer_problems(synthetic(offload__newcomer="x = 1\n"), SYNTHETIC_LAYERS)
    assert problems == [
        "offload.newcomer is in no layer: add it to LAYERS in tests/unit/test_layers.py (the "
        "layer of the modules it imports or above, below those that import it) and a line "
        "for it to the module map in docs/architecture.md."
    ]


def test_a_layer_entry_without_its_module_fails():
    modules = synthetic()
    del modules["offload.middle"]
    assert layer_problems(modules, SYNTHETIC_LAYERS) == [
        "offload.middle is in LAYERS but no such module exists: remove it from LAYERS."
    ]


def test_a_migration_importing_offload_fails():
    modules = synthetic(offload__migrations__0001_x="from offload.bottom import limit\n")
    assert layer_problems(modules, SYNTHETIC_LAYERS) == []
    assert upward_imports(modules, SYNTHETIC_LAYERS, {}) == [
        "offload.migrations.0001_x line 1 imports offload.bottom: a migration must not "
        "import offload (it runs against historical models)."
    ]


# The module map: docs/architecture.md names every module by its path.


def mapped_paths(package: Path = PACKAGE) -> list[str]:
    """``offload/...`` paths the module map must name: every module but the
    migrations (named once, as ``offload/migrations/``) and empty package markers."""
    paths = ["offload/migrations/"]
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        if relative.startswith("offload/migrations/") or not path.read_text().strip():
            continue
        paths.append(relative)
    return paths


def test_every_module_is_in_the_module_map():
    text = ARCHITECTURE.read_text()
    missing = [path for path in mapped_paths() if f"`{path}`" not in text]
    assert missing == [], (
        f"docs/architecture.md's module map lacks {', '.join(missing)}: add one line for each."
    )


def test_the_module_map_names_no_missing_module():
    text = ARCHITECTURE.read_text()
    named = set(re.findall(r"`(offload/[\w/]+(?:\.py|/))`", text))
    stale = sorted(path for path in named if not (PACKAGE.parent / path).exists())
    assert stale == [], f"docs/architecture.md names modules that do not exist: {stale}"


def test_the_architecture_lists_the_layers_in_order():
    text = ARCHITECTURE.read_text()
    section = text.split("## The layers", 1)[1].split("\n## ", 1)[0]
    titles = re.findall(r"^\d+\. \*\*(.+?)\*\*", section, flags=re.MULTILINE)
    assert titles == [title for title, _members in LAYERS]
