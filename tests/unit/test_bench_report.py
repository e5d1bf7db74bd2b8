"""The benchmark's report: rows per target, the database limits, W7's shares, --quick.

bench/ is not in the sdist, which carries tests/: there these tests skip.
"""

import pytest

pytest.importorskip("bench.report")

from bench.report import FIGURES, format_table, limit_medians, verdicts
from bench.run import QUICK, QUICK_JSON, parse_args
from bench.workloads import w7_figures


def figures(**found):
    return {figure.key: found.get(figure.key) for figure in FIGURES}


def result(database="sqlite", limits=None):
    return {
        "database": database,
        "conn_max_age": 0,
        "status": "ok",
        "error": None,
        "problems": [],
        "median": {
            "offload": figures(w1_per_s=3000.0, w4_caller_p50_ms=2.0, w7_drain_pct_w3=70.0),
            "peer": figures(w1_per_s=1000.0, w4_caller_p50_ms=400.0),
        },
        "limits": limits,
    }


PEERS = {
    "huey_sqlite": figures(w1_per_s=5000.0, w4_caller_p50_ms=50.0),
    "huey_redis": figures(w1_per_s=6000.0, w4_caller_p50_ms=1.5),
}


def rows(found, key):
    return [row for row in found if row["key"] == key]


def test_a_figure_with_several_targets_gets_one_row_each_with_the_fastest_peers_ratio():
    found = verdicts(result(limits={"commit_per_s": 10_000.0, "commit_p50_ms": 0.4}), PEERS)
    w1 = rows(found, "w1_per_s")
    assert [(r["target"], r["verdict"]) for r in w1] == [
        ("/tasks-db >= 2.5", "PASS"),  # 3.0
        ("/huey-sq >= 1", "MISS"),  # 0.6
        ("/limit >= 0.5", "MISS"),  # 0.3
    ]
    assert {r["best_peer"] for r in w1} == {"huey_redis"}
    assert w1[0]["ratio"] == pytest.approx(0.5)  # against huey on Redis, the fastest
    assert w1[0]["limit"] == 10_000.0
    (p50,) = rows(found, "w4_caller_p50_ms")
    assert (p50["target"], p50["verdict"], p50["judged"]) == ("/huey-rd < 1", "MISS", 2.0 / 1.5)
    assert rows(found, "w7_drain_pct_w3")[0]["verdict"] == "MISS"
    untargeted = rows(found, "w4_caller_p95_ms")
    assert [(r["target"], r["verdict"]) for r in untargeted] == [(None, None)]


def test_without_huey_and_limits_their_targets_are_skipped_not_missed():
    found = verdicts(result(database="postgres"), {})
    gap = rows(found, "w4_caller_p50_ms")
    assert [(r["target"], r["verdict"]) for r in gap] == [("-limit <= 1", "SKIP")]
    assert all(r["huey_redis"] is None for r in found)
    assert rows(found, "w1_per_s")[0]["best_peer"] == "peer"


def test_the_limits_are_medians_over_repeats():
    runs = [
        {"limits": {"paced": {"p50_ms": p50, "p95_ms": 1.0, "p99_ms": 2.0},
                    "tight": {"per_second": rate}}}
        for p50, rate in ((0.3, 900.0), (0.5, 1100.0), (0.4, 1000.0))
    ]  # fmt: skip
    assert limit_medians(runs) == {
        "commit_p50_ms": 0.4,
        "commit_p95_ms": 1.0,
        "commit_p99_ms": 2.0,
        "commit_per_s": 1000.0,
    }
    assert limit_medians([{}])["commit_per_s"] is None


def test_the_table_shows_every_peer_counts_skips_and_says_why_a_peer_is_missing():
    found = result(limits={"commit_per_s": 10_000.0, "commit_p50_ms": 0.4})
    found["verdicts"] = verdicts(found, PEERS)
    report = {
        "git": {"commit": "abc1234", "dirty": False},
        "python": "3.13",
        "django": "6.1",
        "peer_version": "0.13.0",
        "cpu_count": 2,
        "parameters": {"repeat": 1},
        "databases": [found],
        "peers": {
            "huey_sqlite": {"status": "ok", "version": "3.5.4", "problems": []},
            "huey_redis": {"status": "unreachable", "error": "ConnectionError: refused"},
        },
    }
    table = format_table(report)
    assert "huey-sq" in table
    assert "huey-rd" in table
    assert "huey_sqlite 3.5.4" in table
    assert "huey_redis: skipped, cannot connect: ConnectionError: refused" in table
    assert "W4 caller's clock p50" in table
    assert "targets: " in table
    assert " MISS, " in table
    assert " SKIP" in table


def test_w7_is_read_against_w1_and_w3_alone():
    w7 = {"enqueue_per_s": 800.0, "drain_per_s": 750.0}
    assert w7_figures(w7, 1000.0, 1500.0) == {
        "w7_enqueue_per_s": 800.0,
        "w7_drain_per_s": 750.0,
        "w7_enqueue_pct_w1": 80.0,
        "w7_drain_pct_w3": 50.0,
    }
    assert set(w7_figures(None, 1000.0, None).values()) == {None}  # not measured for the peers
    assert w7_figures(w7, 1000.0, None)["w7_drain_pct_w3"] is None


def test_quick_sets_smoke_sizes_its_own_file_and_no_plot_but_an_explicit_size_wins():
    args = parse_args(["--quick", "--tasks", "123"])
    assert args.tasks == 123
    assert args.latency_tasks == QUICK["latency_tasks"]
    assert (args.json, args.no_plot, args.ages) == (QUICK_JSON, True, [0])
    full = parse_args([])
    assert full.latency_tasks >= 200  # the issue asks for at least 200 samples
    assert full.peer_variants == ["huey-sqlite", "huey-redis"]
    assert parse_args(["--peers", "none"]).peer_variants == []
    with pytest.raises(SystemExit):
        parse_args(["--peers", "huey-mongo"])
