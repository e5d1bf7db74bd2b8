"""What the admin masks in arguments, results and tracebacks, and what it leaves."""

import pytest

from offload.admin.display import as_json, errors_table
from offload.admin.masking import MASK, arguments_hidden, mask_secrets, mask_text
from offload.conf import parse_options


@pytest.mark.parametrize("key", [
    "password", "DB_PASSWORD", "pwd", "user_pwd", "passwd", "passphrase", "token", "refreshToken",
    "api_key", "apiKey", "X-Api-Key", "secret", "client_secret", "cookie", "Set-Cookie",
    "session", "session_id", "sessionid", "Authorization", "auth", "credentials", "private_key",
    "jwt", "csrftoken", "otp", "sid", "pin", "signature",
])  # fmt: skip
def test_secret_key_names_are_masked(key):
    assert mask_secrets({key: "v", "user": "ann"}) == {key: MASK, "user": "ann"}


@pytest.mark.parametrize("key", ["user", "name", "count", "ship", "inside", "pinned_at", "email"])
def test_ordinary_key_names_are_not(key):
    assert mask_secrets({key: "plain"}) == {key: "plain"}


@pytest.mark.parametrize(("value", "shown"), [
    ("postgres://app:hunter2@db:5432/main", f"postgres://app:{MASK}@db:5432/main"),
    ("mysql://root:p%40ss@localhost/x", f"mysql://root:{MASK}@localhost/x"),
    ("https://example.com/a:b", "https://example.com/a:b"),
    ("pg_dump --password hunter2 main", f"pg_dump --password {MASK} main"),
    ("deploy --token=abc123 --verbose", f"deploy --token={MASK} --verbose"),
    ("curl --api-key 'a b c' x", f"curl --api-key {MASK} x"),
    ("host=db user=app password=hunter2", f"host=db user=app password={MASK}"),
    ("https://x.test/cb?token=abc&page=2", f"https://x.test/cb?token={MASK}&page=2"),
    ("session_id: 5f2b", f"session_id: {MASK}"),
    ("Bearer abc.def.ghi", MASK),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sflKxwRJSMeKKF2QT4fw", MASK),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123", MASK),
    ("AKIAIOSFODNN7EXAMPLE", MASK),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", MASK),
    ("sk_live_51H8xY2eZvKYlo2C0123456789", MASK),
    ("q8Zr3xK0pL7vT2mW9nB4cY6hJ1fD5sA", MASK),  # a generated secret
    ("hello world", "hello world"),
    ("myapp.tasks.send_welcome_email", "myapp.tasks.send_welcome_email"),
    ("2026-12-03T06:10:05+00:00", "2026-12-03T06:10:05+00:00"),
    ("ada@example.com", "ada@example.com"),
])  # fmt: skip
def test_credentials_inside_strings_are_masked(value, shown):
    assert mask_text(value) == shown


def test_positional_arguments_are_masked_too():
    args = [
        "ann",
        "postgres://app:hunter2@db/main",
        ["--password", "hunter2", "--user", "ann"],
        {"nested": ["--token", "t0k"]},
        42,
        None,
    ]
    assert mask_secrets(args) == [
        "ann",
        f"postgres://app:{MASK}@db/main",
        ["--password", MASK, "--user", "ann"],
        {"nested": ["--token", MASK]},
        42,
        None,
    ]


def test_the_page_never_shows_the_secret():
    html = as_json({"args": ["postgres://u:hunter2@h/d", "--pwd", "hunter3"], "kwargs": {}})
    assert "hunter2" not in html
    assert "hunter3" not in html
    table = errors_table([{"traceback": "OperationalError: password=hunter4 rejected"}])
    assert "hunter4" not in table


def test_whole_tasks_arguments_by_path_prefix_or_all():
    assert arguments_hidden("billing.tasks.charge", ["billing.tasks.charge"])
    assert arguments_hidden("billing.tasks.charge", ["billing.*"])
    assert arguments_hidden("anything", ["*"])
    assert not arguments_hidden("billing.tasks.refund", ["billing.tasks.charge"])
    assert not arguments_hidden("other.tasks", ["billing.*"])
    assert not arguments_hidden("billing.tasks.charge", [])


def test_the_new_options_are_checked():
    good = parse_options({"ADMIN_ACTION_LIMIT": 50, "ADMIN_MASK_ARGUMENTS": ["a.*"]}, {"default"})
    assert good.problems == []
    assert (good.admin_action_limit, good.admin_mask_arguments) == (50, ("a.*",))
    bad = parse_options({"ADMIN_ACTION_LIMIT": 2_000_000, "ADMIN_MASK_ARGUMENTS": [1]}, {"default"})
    assert len(bad.problems) == 2
    assert "ADMIN_MASK_ARGUMENTS" in bad.problems[1]


def test_huge_strings_are_masked_in_linear_time():
    import time

    for unit in ("a", "a1-", "x://u", "--", "password", 'token="', "--password ", "ab-:/@ "):
        huge = unit * (1_000_000 // len(unit))
        started = time.monotonic()
        masked = mask_secrets([huge, {"k": huge}])
        assert time.monotonic() - started < 2.0, unit
        assert len(masked[0]) < 20_100  # cut: no page shows more of one value
