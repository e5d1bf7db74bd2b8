"""The allow-lists of schedules made in the admin: empty by default, checked as
text, module prefixes on dot boundaries only."""

from offload.conf import Options, parse_options
from offload.schedules.allowed import command_allowed, task_allowed
from offload.schedules.spec import InvalidSchedule, normalize_cron, spec_problems


def test_nothing_is_allowed_by_default():
    options = parse_options({}, {"default"})
    assert (options.schedule_admin_commands, options.schedule_admin_tasks) == ((), ())
    assert options.schedule_admin_action_limit == 100
    assert not command_allowed(options, "shell")
    assert not task_allowed(options, "os.system")


def test_task_entries_allow_a_path_or_a_module_on_dot_boundaries():
    options = Options(schedule_admin_tasks=("myapp.tasks", "other.jobs.one"))
    assert task_allowed(options, "myapp.tasks.send")
    assert task_allowed(options, "myapp.tasks.sub.send")
    assert task_allowed(options, "other.jobs.one")
    assert not task_allowed(options, "myapp.tasks_evil.send")
    assert not task_allowed(options, "myapp.task")
    assert not task_allowed(options, "other.jobs.one_more")
    assert not task_allowed(options, None)
    assert not task_allowed(None, "myapp.tasks.send")


def test_commands_match_exactly():
    options = Options(schedule_admin_commands=("clearsessions",))
    assert command_allowed(options, "clearsessions")
    assert not command_allowed(options, "clearsessions2")
    assert not command_allowed(options, "shell")


def test_bad_allow_lists_and_limits_are_reported():
    options = parse_options(
        {
            "SCHEDULE_ADMIN_COMMANDS": "shell",
            "SCHEDULE_ADMIN_TASKS": ["ok.tasks", " spaced", 3],
            "SCHEDULE_ADMIN_ACTION_LIMIT": 0,
        },
        {"default"},
    )
    text = "\n".join(options.problems)
    assert "OPTIONS['SCHEDULE_ADMIN_COMMANDS'] must be list or tuple" in text
    assert "OPTIONS['SCHEDULE_ADMIN_TASKS'] must be a list of names" in text
    assert "OPTIONS['SCHEDULE_ADMIN_ACTION_LIMIT']" in text


def test_a_cron_that_never_fires_is_refused():
    for expression in ("0 0 */30 2 0#5", "0 0 31 2 *"):
        try:
            normalize_cron(expression)
        except InvalidSchedule:
            continue
        raise AssertionError(f"{expression!r} was accepted")
    problems = spec_problems({"never": {"task": "a.b", "cron": "0 0 */30 2 0#5"}}, "UTC")
    assert len(problems) == 1
    assert "never fires" in problems[0]
