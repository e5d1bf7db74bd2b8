from django.tasks import TaskResultStatus

from offload.states import FINISHED_STATES, State, to_django_status


def test_every_state_maps_to_a_django_status():
    for state in State:
        assert isinstance(to_django_status(state), TaskResultStatus)


def test_finished_states_map_to_finished_statuses():
    finished = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}
    assert {to_django_status(s) for s in FINISHED_STATES} == finished
    assert {to_django_status(s) for s in set(State) - FINISHED_STATES} == {
        TaskResultStatus.READY,
        TaskResultStatus.RUNNING,
    }
