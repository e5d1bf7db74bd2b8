"""A task module that no allow-list names: the schedule security tests check that
nothing imports it (it would then be in ``sys.modules``)."""

from django.tasks import task


@task
def chirp() -> None:
    pass
