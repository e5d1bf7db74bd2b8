"""The benchmark's coordination figures (W8-W10), --only, and the claim plans' reading.

bench/ is not in the sdist, which carries tests/: there these tests skip.
"""

import pytest

pytest.importorskip("bench.coord_figures")

from bench.compare import compare, format_rows
from bench.coord_figures import (
    callback_wait,
    handover_gaps,
    most_at_once,
    most_at_once_per_key,
    most_in_window,
    pct,
    rate_after_first_window,
)
from bench.coordination import coordination_figures
from bench.plans import read_plan, sorting_claims
from bench.report import FIGURES, format_table, verdicts, workload_of
from bench.run import QUICK, SELECTABLE, parse_args, selected
from bench.targets import judged_value, targets_for, verdict
from bench.workloads import WORKLOADS, figures_of


def test_most_at_once_counts_overlaps_and_an_end_meeting_a_start_is_not_one():
    assert most_at_once([]) == 0
    assert most_at_once([(0.0, 1.0), (0.5, 1.5), (0.9, 2.0)]) == 3
    # A task promoted by another's end starts at that end, on a ms clock.
    assert most_at_once([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == 1
    assert most_at_once([(0.0, 1.0), (0.999, 2.0)]) == 2
    # Within one tick: still running beside the one around it...
    assert most_at_once([(0.0, 5.0), (3.0, 3.0)]) == 2
    # ...but not beside the one whose end let it in.
    assert most_at_once([(0.0, 3.0), (3.0, 3.0), (3.0, 4.0)]) == 2
    with pytest.raises(ValueError, match="ends before it starts"):
        most_at_once([(2.0, 1.0)])


def test_most_at_once_is_per_key():
    rows = [("a", 0.0, 1.0), ("a", 0.5, 1.5), ("b", 0.2, 1.2), ("b", 1.2, 2.0), ("c", 0, 0)]
    assert most_at_once_per_key(rows) == {"a": 2, "b": 1, "c": 1}


def test_a_freed_slot_waits_from_its_keys_latest_end_to_the_next_claim():
    rows = [
        ("a", 0.0, 1.0),  # the key's first tasks: claimed before any end
        ("a", 0.0, 2.0),
        ("a", 1.25, 3.0),  # 0.25 s after the end at 1.0
        ("a", 2.0, 4.0),  # at the very end at 2.0 (a ms clock)
        ("b", 5.0, 6.0),
        ("b", 6.5, 7.0),  # another key's ends do not count
    ]
    assert handover_gaps(rows) == pytest.approx([0.0, 0.25, 0.5])
    assert handover_gaps([]) == []


def test_a_window_is_half_open_so_a_slot_freed_at_exactly_its_width_is_not_counted_twice():
    # A rate of 2/s: claims at 0 and 0.5, the next two once each is 1 s old.
    claims = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert most_in_window(claims, 1.0) == 2
    assert most_in_window([0.0, 0.5, 0.999], 1.0) == 3
    assert most_in_window([], 1.0) == 0
    assert most_in_window([3.0, 1.0, 2.0, 1.5], 1.0) == 2  # in any order
    with pytest.raises(ValueError, match="wider than 0"):
        most_in_window([1.0], 0)


def test_the_rate_held_leaves_out_the_first_window_which_goes_at_once():
    # 300 tasks at 50/s: 50 at each of 0, 1, ..., 5 s: 250 later starts in 5 s.
    starts = [float(second) for second in range(6) for _ in range(50)]
    assert rate_after_first_window(starts, 50) == pytest.approx(50.0)
    # Counting the first burst too would read 60/s, above the limit kept.
    assert (len(starts) - 1) / 5 == pytest.approx(59.8)
    assert rate_after_first_window(starts[:50], 50) is None  # nothing after the first window
    assert rate_after_first_window([1.0] * 60, 50) is None  # all at one moment


def test_the_callback_waits_from_the_last_member():
    assert callback_wait({0: 1.0, 1: 3.0, 2: 2.0}, 3.025) == pytest.approx(0.025)
    assert callback_wait({0: 1.0}, 0.5) == pytest.approx(-0.5)  # shown, not hidden
    with pytest.raises(ValueError, match="no member"):
        callback_wait({}, 1.0)


def test_pct():
    assert pct(49.5, 50) == pytest.approx(99.0)
    assert pct(None, 50) is None
    assert pct(10, 0) is None
    assert pct(10, None) is None


def test_w8_reads_against_w3_at_its_own_concurrency_and_missing_workloads_are_none():
    raw = {
        "w8": {
            "per_second": 700.0,
            "concurrency": "2x4",
            "over_limit": 0,
            "handover_ms": {"p50_ms": 3.5},
        },
        "w9": {"start_rate_pct": 99.0, "most_claims_pct": 100.0, "most_starts_pct": 150.0},
    }
    found = coordination_figures(raw, {"2x4": 1400.0, "2x1": 1000.0})
    assert found["w8_pct_w3"] == pytest.approx(50.0)
    assert (found["w8_over_limit"], found["w9_start_rate_pct"]) == (0, 99.0)
    assert found["w8_handover_p50_ms"] == 3.5
    assert found["w10_callback_ms"] is None
    assert coordination_figures(raw, None)["w8_pct_w3"] is None  # W3 not run
    assert set(coordination_figures({}, None).values()) == {None}


def test_a_partial_run_has_figures_for_what_ran_only():
    raw = {"w2": {"per_second": 900.0, "peak_rss_mb": [50.0, 52.0]}}
    found = figures_of(raw)
    assert (found["w2_per_s"], found["rss_mb"]) == (900.0, 52.0)
    assert found["w3_per_s"] is None
    assert found["w7_drain_pct_w3"] is None
    assert set(found) == {figure.key for figure in FIGURES} - {"plan_sorts"}


def test_the_coordination_targets():
    def judge(key, value):
        return [verdict(t, judged_value(t, {"offload": {key: value}}, {}))
                for t in targets_for(key, "postgres")]  # fmt: skip

    assert judge("w8_over_limit", 0) == ["PASS"]
    assert judge("w8_over_limit", 1) == ["MISS"]
    assert judge("w9_start_rate_pct", 101.9) == ["PASS", "PASS"]
    assert judge("w9_start_rate_pct", 102.5) == ["MISS", "PASS"]  # above the rate set
    assert judge("w9_start_rate_pct", 85.0) == ["PASS", "MISS"]  # far below it
    assert judge("w9_most_claims_pct", 100) == ["PASS"]
    assert judge("w9_most_claims_pct", 105) == ["MISS"]
    assert judge("plan_sorts", 0) == ["PASS"]
    assert judge("plan_sorts", 1) == ["MISS"]


def test_only_selects_workloads_and_refuses_others():
    assert set(SELECTABLE) == {*WORKLOADS, "plans"}
    assert parse_args([]).only == "all"
    assert selected("all") == frozenset(SELECTABLE)
    args = parse_args(["--only", "w3, w2"])
    assert args.only == "w2,w3"  # in the benchmark's order
    assert selected(args.only) == {"w2", "w3"}
    for bad in ("w11", "w2,nope", ","):
        with pytest.raises(SystemExit):
            parse_args(["--only", bad])


def test_quick_has_smoke_sizes_for_the_new_workloads():
    args = parse_args(["--quick"])
    assert (args.w8_tasks, args.w9_tasks, args.w10_members) == (
        QUICK["w8_tasks"],
        QUICK["w9_tasks"],
        QUICK["w10_members"],
    )
    full = parse_args([])
    assert (full.w8_tasks, full.w8_keys, full.w8_limit) == (2000, 20, 2)
    assert (full.w9_tasks, full.w9_rate, full.w10_members) == (300, 50, 1000)


def test_every_figure_belongs_to_a_workload_and_only_selected_ones_get_rows():
    assert {workload_of(figure.key) for figure in FIGURES} == set(SELECTABLE)
    found = {
        "database": "sqlite",
        "median": {"offload": {"w2_per_s": 900.0, "w8_over_limit": 0}, "peer": {}},
        "limits": None,
    }
    rows = verdicts(found, {}, frozenset({"w2", "w8"}))
    assert {workload_of(row["key"]) for row in rows} == {"w2", "w8"}
    assert len(verdicts(found, {})) > len(rows)  # all: every figure, missing ones MISS


SQLITE_PLAN = ["SEARCH offload_task USING INDEX offload_task_claim_all_idx (status=?)"]


def test_a_plan_is_read_for_sorts_and_indexes():
    found = read_plan("sqlite", SQLITE_PLAN)
    assert (found["sorts"], found["indexes"]) == (False, ["offload_task_claim_all_idx"])
    sorting = read_plan("postgresql", ["Limit", "  ->  Sort", "        Sort Key: priority DESC"])
    assert sorting["sorts"]
    assert len(sorting["sort_lines"]) == 2


def test_only_claims_that_take_tasks_count_as_sorting():
    plans = {
        "sync tasks": read_plan("sqlite", SQLITE_PLAN),
        "either kind": read_plan("sqlite", [*SQLITE_PLAN, "USE TEMP B-TREE FOR ORDER BY"]),
        "async tasks": read_plan("mysql", ["1 | SIMPLE | offload_task | ref | x | y | filesort"]),
    }  # fmt: skip
    assert sorting_claims(plans) == ["either kind"]


def test_the_table_shows_which_index_each_claim_reads():
    plans = {"sync tasks": read_plan("sqlite", SQLITE_PLAN)}
    found = {
        "database": "sqlite",
        "conn_max_age": 0,
        "status": "ok",
        "problems": [],
        "median": {"offload": {"plan_sorts": 0}, "peer": {}},
        "limits": None,
        "plans": {"tasks": 300, "each_coordinated_kind": 30, "plans": plans, "sorting": []},
    }
    found["verdicts"] = verdicts(found, {}, frozenset({"plans"}))
    report = {
        "git": {"commit": "abc1234", "dirty": False},
        "python": "3.13",
        "django": "6.1",
        "peer_version": "0.13.0",
        "cpu_count": 2,
        "parameters": {"repeat": 1},
        "databases": [found],
        "peers": {},
    }
    table = format_table(report)
    assert "sync tasks   reads offload_task_claim_all_idx" in table
    assert SQLITE_PLAN[0] not in table
    assert SQLITE_PLAN[0] in format_table(report, full_plans=True)
    assert "targets: 1 PASS, 0 MISS, 0 SKIP" in table


def run_of(database, age, offload, peer):
    median = {"offload": {"w2_per_s": offload}, "peer": {"w2_per_s": peer}}
    return {"databases": [{"database": database, "conn_max_age": age, "median": median}]}


def test_two_commits_are_compared_by_the_median_of_their_runs():
    before = [run_of("postgres", 0, rate, 100.0) for rate in (1000.0, 1100.0, 900.0)]
    after = [run_of("postgres", 0, rate, 102.0) for rate in (940.0, 960.0, 1300.0)]
    after.append(run_of("sqlite", 0, 5000.0, 300.0))  # in one set only: left out
    rows = compare(before, after, ["w2_per_s", "w3_per_s"])
    assert [(r["system"], r["before"], r["after"], r["runs"]) for r in rows] == [
        ("offload", 1000.0, 960.0, (3, 3)),
        ("peer", 100.0, 102.0, (3, 3)),
    ]
    assert rows[0]["change_pct"] == pytest.approx(-4.0)
    assert rows[1]["change_pct"] == pytest.approx(2.0)  # the machine's drift
    table = format_rows(rows)
    assert "-4.0%" in table
    assert "tasks-db" in table
