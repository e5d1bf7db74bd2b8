"""Worker settings: one parser per setting, flag > environment > OPTIONS > default."""

import pytest

from offload.conf import parse_options
from offload.exceptions import BackendMisconfigured
from offload.worker.config import check_cpu_bound_queues, get_backend
from offload.worker_options import check_options, default_processes, resolve, resolve_all


def _resolve(flags=None, env=None, options=None, debug=False):
    return resolve(flags or {}, env or {}, lambda alias: options or {}, debug=debug)


def test_defaults():
    chosen = _resolve()
    assert chosen.processes == default_processes() >= 1
    assert (chosen.threads, chosen.async_concurrency, chosen.shutdown_timeout) == (4, 100, 25.0)
    assert (chosen.queues, chosen.exclude_queues, chosen.burst) == (None, (), False)
    assert (chosen.max_tasks_per_child, chosen.max_memory_per_child) == (None, None)
    assert (chosen.verbosity, chosen.log_format, chosen.reload) == (1, "text", False)


def test_a_flag_beats_the_environment_which_beats_options():
    options = {"THREADS": 2, "PROCESSES": 3, "QUEUES": ["emails"]}
    env = {"OFFLOAD_THREADS": "5", "OFFLOAD_PROCESSES": "6"}
    chosen = _resolve({"threads": "7"}, env, options)
    assert (chosen.threads, chosen.processes, chosen.queues) == (7, 6, ("emails",))


def test_reload_follows_debug_unless_set():
    assert _resolve(debug=True).reload is True
    assert _resolve({"reload": False}, debug=True).reload is False
    assert _resolve(env={"OFFLOAD_RELOAD": "yes"}).reload is True


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"threads": "many"}, {}, "--threads = 'many': expected a whole number"),
        ({}, {"OFFLOAD_PROCESSES": "0"}, "OFFLOAD_PROCESSES = '0': must be between 1 and 256"),
        ({"queues": " , "}, {}, "needs at least one queue name"),
        ({"shutdown_timeout": "-1"}, {}, "0 or more"),
        ({"max_memory_per_child": "lots"}, {}, "a size such as 512M"),
        ({}, {"OFFLOAD_BURST": "maybe"}, "expected true or false"),
        ({"log_format": "xml"}, {}, "expected one of text, json"),
    ],
)
def test_bad_values_name_their_source(flags, env, message):
    with pytest.raises(BackendMisconfigured, match=message.replace("(", r"\(")):
        _resolve(flags, env)


def test_bad_options_name_the_key():
    with pytest.raises(BackendMisconfigured, match=r"OPTIONS\['WORKER'\]\['THREADS'\] = 0"):
        _resolve(options={"THREADS": 0})


@pytest.mark.parametrize(
    ("text", "size"),
    [("512M", 512 * 2**20), ("1.5G", int(1.5 * 2**30)), ("800MiB", 800 * 2**20),
     ("64k", 64 * 2**10), ("300", 300 * 2**20), (256, 256 * 2**20), ("0", None)],
)  # fmt: skip
def test_memory_sizes(text, size):
    assert _resolve({"max_memory_per_child": text}).max_memory_per_child == size


def test_zero_means_no_task_limit():
    assert _resolve({"max_tasks_per_child": "0"}).max_tasks_per_child is None
    assert _resolve({"max_tasks_per_child": "100"}).max_tasks_per_child == 100


def test_options_are_checked_when_the_backend_is_built():
    assert check_options({"THREADS": 8, "QUEUES": ["a", "b"]}) == []
    problems = check_options({"THRADS": 8, "PROCESSES": "x"})
    assert "Unknown option OPTIONS['WORKER']['THRADS']. Did you mean 'THREADS'?" in problems
    assert any("'PROCESSES'" in p and "whole number" in p for p in problems)
    assert parse_options({"WORKER": {"LOG_FORMAT": "xml"}}, set()).problems == [
        "OPTIONS['WORKER']['LOG_FORMAT'] = 'xml': expected one of text, json."
    ]
    assert parse_options({"WORKER": []}, set()).problems == [
        "OPTIONS['WORKER'] must be dict, got list []."
    ]


def test_cpu_bound_queues_come_from_any_source_and_must_be_declared():
    assert _resolve().cpu_bound_queues == ()
    assert _resolve(env={"OFFLOAD_CPU_BOUND_QUEUES": "reports, emails"}).cpu_bound_queues == (
        "reports",
        "emails",
    )
    assert _resolve(options={"CPU_BOUND_QUEUES": ["reports"]}).cpu_bound_queues == ("reports",)
    backend = get_backend("default")  # QUEUES: default, emails, reports
    check_cpu_bound_queues(backend, ("reports",))
    with pytest.raises(BackendMisconfigured, match=r"CPU-bound queue\(s\) 'thumbs' are not in"):
        check_cpu_bound_queues(backend, ("reports", "thumbs"))


def test_several_backends_each_read_their_own_worker_options():
    options = {"a": {"PROCESSES": 2, "QUEUES": ["emails"]}, "b": {"PROCESSES": 1}}
    found = resolve_all(
        {"backend": "a, b,a", "threads": "3"}, {}, lambda alias: options[alias], debug=False
    )
    assert [s.backend for s in found] == ["a", "b"]  # each alias once, in order
    assert [(s.processes, s.queues, s.threads) for s in found] == [
        (2, ("emails",), 3),
        (1, None, 3),
    ]
    from_env = resolve_all({}, {"OFFLOAD_BACKEND": "b,a"}, lambda alias: {}, debug=False)
    assert [s.backend for s in from_env] == ["b", "a"]
    assert [s.backend for s in resolve_all({}, {}, lambda alias: {}, debug=False)] == ["default"]


def test_an_empty_alias_between_commas_is_refused():
    with pytest.raises(BackendMisconfigured, match="OFFLOAD_BACKEND = 'a,,b': an empty alias"):
        resolve_all({}, {"OFFLOAD_BACKEND": "a,,b"}, lambda alias: {}, debug=False)
