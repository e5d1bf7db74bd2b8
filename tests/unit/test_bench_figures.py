"""The benchmark's pure parts: caller's-clock stamps and percentiles, and how targets are judged.

bench/ is not in the sdist, which carries tests/: there these tests skip.
"""

import pytest

pytest.importorskip("bench.caller_clock")

from bench.caller_clock import (
    StampError,
    append_stamp,
    paced,
    parse_stamps,
    percentile,
    read_stamps,
    start_rate,
    summary,
    waits_ms,
)
from bench.targets import (
    TARGETS,
    Target,
    fastest_peer,
    judged_value,
    targets_for,
    verdict,
)


def test_percentile_is_the_nearest_rank_never_an_interpolation():
    ordered = [float(n) for n in range(1, 201)]  # 1 .. 200
    assert percentile(ordered, 50) == 100
    assert percentile(ordered, 95) == 190
    assert percentile(ordered, 99) == 198
    assert percentile(ordered, 100) == 200
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0  # a value some task had


def test_percentile_refuses_no_samples_and_a_rank_out_of_range():
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 0)
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 101)


def test_summary_sorts_its_samples_and_names_each_percentile():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0] * 40  # 200 samples, in no order
    assert summary(samples) == {"p50_ms": 3.0, "p95_ms": 5.0, "p99_ms": 5.0, "max_ms": 5.0}


def test_stamps_keep_each_tasks_first_start_and_reject_foreign_lines():
    # A task run twice (at-least-once) keeps the start its caller waited for.
    assert parse_stamps("1 10.5\n2 11.0\n1 12.0\n\n") == {1: 10.5, 2: 11.0}
    with pytest.raises(StampError, match="line 2"):
        parse_stamps("1 10.5\nnot a stamp\n")


def test_a_stamp_file_is_read_up_to_its_last_complete_line(tmp_path):
    path = tmp_path / "w4.stamps"
    assert read_stamps(path) == {}  # no task has written yet
    append_stamp(str(path), 0, 100.25)
    append_stamp(str(path), -1, 99.0)
    with path.open("a") as file:
        file.write("7 10")  # a line still being written
    assert read_stamps(path) == {0: 100.25, -1: 99.0}


def test_waits_are_start_minus_send_in_ms_sorted_and_unstarted_tasks_left_out():
    sent = {0: 10.0, 1: 10.05, 2: 10.1}
    started = {0: 10.002, 1: 10.0505, -1: 9.0}
    assert waits_ms(sent, started) == pytest.approx([0.5, 2.0])


def test_start_rate_counts_intervals_between_starts():
    assert start_rate({0: 1.0, 1: 1.5, 2: 2.0}) == 2.0  # two intervals in one second
    assert start_rate({0: 1.0}) is None
    assert start_rate({0: 1.0, 1: 1.0}) is None  # too coarse to say


def test_paced_yields_every_slot_once_in_order():
    assert list(paced(5, 1e9)) == [0, 1, 2, 3, 4]
    assert list(paced(0, 20.0)) == []


FIGURES = {
    "offload": {"w1_per_s": 3000.0, "w3_per_s": 6000.0, "w4_caller_p50_ms": 2.0,
                "w4_caller_p99_ms": 9.0, "w7_enqueue_pct_w1": 85.0},
    "peer": {"w1_per_s": 1500.0, "w3_per_s": 500.0, "w4_caller_p50_ms": 500.0},
    "huey_sqlite": {"w1_per_s": 6000.0, "w3_per_s": 3000.0, "w4_caller_p50_ms": 50.0},
    "huey_redis": {"w1_per_s": 6500.0, "w3_per_s": 5000.0, "w4_caller_p50_ms": 1.5},
}  # fmt: skip
LIMITS = {"commit_per_s": 4000.0, "commit_p50_ms": 0.5, "commit_p99_ms": 1.0}


@pytest.mark.parametrize(
    ("target", "value"),
    [
        (Target("w1_per_s", "value", ">=", 1), 3000.0),
        (Target("w1_per_s", "ratio", ">=", 1.5), 2.0),  # over django-tasks-db
        (Target("w1_per_s", "huey_sqlite", ">=", 1), 0.5),
        (Target("w3_per_s", "huey_redis", ">=", 1), 1.2),
        (Target("w1_per_s", "limit", ">=", 0.5), 0.75),  # over the tight loop's commits
        (Target("w4_caller_p50_ms", "limit_gap", "<=", 1), 1.5),  # ms over the round trip
    ],
)
def test_each_kind_of_target_is_judged_on_its_own_comparison(target, value):
    assert judged_value(target, FIGURES, LIMITS) == pytest.approx(value)


def test_a_missing_peer_or_limit_is_skipped_but_a_missing_own_figure_misses():
    without_redis = {k: v for k, v in FIGURES.items() if k != "huey_redis"}
    target = Target("w3_per_s", "huey_redis", ">=", 1)
    assert judged_value(target, without_redis, LIMITS) is None
    assert verdict(target, None) == "SKIP"
    gap = Target("w4_caller_p50_ms", "limit_gap", "<=", 1)
    assert verdict(gap, judged_value(gap, FIGURES, {})) == "SKIP"
    own = Target("bulk_per_s", "value", ">=", 20_000)
    assert verdict(own, judged_value(own, FIGURES, LIMITS)) == "MISS"


def test_bounds_are_strict_or_not_as_written():
    assert verdict(Target("x", "value", "<", 10), 10.0) == "MISS"
    assert verdict(Target("x", "value", "<=", 10), 10.0) == "PASS"
    assert verdict(Target("x", "value", ">=", 10), 10.0) == "PASS"
    assert Target("w3_per_s", "huey_redis", ">=", 1).text == "/huey-rd >= 1"
    assert Target("w4_caller_p50_ms", "limit_gap", "<=", 1).text == "-limit <= 1"


def test_the_fastest_peer_is_the_best_of_those_measured_either_way():
    assert fastest_peer("w1_per_s", FIGURES, higher_is_better=True) == ("huey_redis", 6500.0)
    assert fastest_peer("w4_caller_p50_ms", FIGURES, higher_is_better=False) == (
        "huey_redis",
        1.5,
    )
    assert fastest_peer("bulk_per_s", FIGURES, higher_is_better=True) == (None, None)


def test_the_issues_targets_are_set_per_database():
    def bars(key, database):
        return {(t.on, t.op, t.bound) for t in targets_for(key, database)}

    assert ("huey_sqlite", ">=", 1) in bars("w1_per_s", "sqlite")
    assert ("ratio", ">=", 1.5) in bars("w1_per_s", "postgres")
    assert all(("limit", ">=", 0.5) in bars("w1_per_s", db) for db in ("sqlite", "postgres"))
    assert ("huey_redis", ">=", 1) in bars("w3_per_s", "postgres")
    assert ("huey_redis", "<", 1) in bars("w4_caller_p50_ms", "sqlite")
    assert ("limit_gap", "<=", 1) in bars("w4_caller_p50_ms", "postgres")
    assert ("value", "<", 10) in bars("w4_caller_p99_ms", "mariadb")
    assert ("value", ">=", 80) in bars("w7_enqueue_pct_w1", "sqlite")
    assert ("value", ">=", 80) in bars("w7_drain_pct_w3", "mariadb")
    assert {t.on for t in TARGETS} <= {"value", "ratio", "huey_sqlite", "huey_redis", "limit",
                                       "limit_gap"}  # fmt: skip
