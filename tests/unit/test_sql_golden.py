"""The golden SQL files match the statements the store renders, on every engine.

No server is needed: each statement is rendered from the engine's ``Vendor``.
A difference means the SQL that runs changed; if that is meant, rewrite the
files with ``OFFLOAD_UPDATE_GOLDEN=1`` and review the diff like code.
"""

import os

import pytest

from tests import golden


@pytest.mark.parametrize("engine", golden.ENGINES)
@pytest.mark.parametrize("statement", golden.STATEMENTS)
def test_golden_sql(statement, engine):
    rendered = golden.render_file(statement, engine)
    target = golden.path(statement, engine)
    if os.environ.get("OFFLOAD_UPDATE_GOLDEN") == "1":
        target.write_text(rendered)
    assert target.read_text() == rendered, f"{target.name} differs from the rendered SQL"


def test_layout_gives_the_exact_statement_back():
    for statement in golden.STATEMENTS:
        for engine in golden.ENGINES:
            for label, sql in golden.RENDER[statement](golden.vendor_named(engine)):
                assert golden.flatten(golden.layout(sql)) == sql, (statement, engine, label)
            assert set(golden.read_statements(statement, engine)) == {
                label for label, _ in golden.RENDER[statement](golden.vendor_named(engine))
            }
