"""How the supervisor reads its stop requests: signals, and a restart under --reload."""

from offload.worker.supervisor import Supervisor
from offload.worker_options import resolve


def _supervisor() -> Supervisor:
    chosen = resolve({}, {}, lambda alias: {}, debug=False)
    return Supervisor(chosen, write=lambda text: None)


def test_a_restart_stops_gracefully_and_is_not_a_first_signal(backend):
    supervisor = _supervisor()
    supervisor.request_stop(restart=True)
    supervisor.request_stop(restart=True)  # a second change while stopping: nothing more
    supervisor._on_signal_pipe()
    assert (supervisor.stopping, supervisor.restart_requested) == (True, True)
    assert (supervisor.signalled, supervisor.forced) == (False, False)

    supervisor.request_stop()  # a SIGTERM now: stop for good, still gracefully
    supervisor._on_signal_pipe()
    assert (supervisor.signalled, supervisor.forced) == (True, False)
    supervisor.request_stop()  # the second one forces the stop
    supervisor._on_signal_pipe()
    assert supervisor.forced


def test_a_second_signal_forces_the_stop(backend):
    supervisor = _supervisor()
    supervisor.request_stop()
    supervisor._on_signal_pipe()
    assert (supervisor.stopping, supervisor.forced, supervisor.restart_requested) == (
        True, False, False,
    )  # fmt: skip
    supervisor.request_stop()
    supervisor._on_signal_pipe()
    assert supervisor.forced
