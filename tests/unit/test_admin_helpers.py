"""The admin's pure helpers: secret masking, bounded parameters, percentiles, option bounds."""

from offload.admin.display import as_json
from offload.admin.security import MASK, bounded_int, mask_secrets
from offload.admin.stats import percentile
from offload.conf import parse_options


def test_secret_looking_keys_are_masked_at_any_depth():
    value = {
        "user": "ann",
        "Password": "p",
        "nested": [{"api_key": "k", "refreshToken": "t", "n": 1}, "plain"],
        "DB_SECRET": {"whole": "subtree"},
    }
    assert mask_secrets(value) == {
        "user": "ann",
        "Password": MASK,
        "nested": [{"api_key": MASK, "refreshToken": MASK, "n": 1}, "plain"],
        "DB_SECRET": MASK,
    }
    assert value["Password"] == "p"  # a copy; the original is untouched


def test_masking_survives_deep_nesting():
    deep: object = {"token": "x"}
    for _ in range(5000):
        deep = [deep]
    masked = mask_secrets(deep)
    for _ in range(5000):
        masked = masked[0]
    assert masked == {"token": MASK}


def test_json_is_escaped_and_cut():
    html = as_json({"a": "<script>" + "x" * 30_000})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "more characters)" in html


def test_bounded_int():
    assert bounded_int(None, 5, 1, 10) == 5
    assert bounded_int("abc", 5, 1, 10) == 5
    assert bounded_int("-3", 5, 1, 10) == 1
    assert bounded_int("99", 5, 1, 10) == 10
    assert bounded_int("9" * 40, 5, 1, 10) == 5


def test_percentile_is_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0


def test_admin_options_are_bounded():
    problems = parse_options(
        {"ADMIN_COUNT_LIMIT": 5, "DASHBOARD_REFRESH_SECONDS": 0.5, "DASHBOARD_SAMPLE_SIZE": 10**9},
        {"default"},
    ).problems
    assert len(problems) == 3
    assert "OPTIONS['ADMIN_COUNT_LIMIT'] must be between 100 and 10,000,000" in problems[0]
    good = parse_options({"ADMIN_COUNT_LIMIT": 500, "DASHBOARD_REFRESH_SECONDS": 2.5}, {"default"})
    assert good.problems == []
    assert (good.admin_count_limit, good.dashboard_refresh_seconds) == (500, 2.5)
