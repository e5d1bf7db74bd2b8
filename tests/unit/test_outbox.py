"""The outbox: outcomes posted by tasks, in order, refused once closed."""

from offload.worker.outbox import COMPLETE_BATCH_SIZE, Outbox
from tests.unit.worker_parts import claimed, failure, success


def test_posted_outcomes_wake_the_dispatcher_and_are_collected_in_order():
    nudges = []
    outbox = Outbox(lambda: nudges.append(1))
    first = outbox.post_for_reply(claimed(1), success(), 0.0)
    outbox.post_for_reply(claimed(2), failure(), 0.0)
    assert len(nudges) == 2
    assert len(outbox) == 2
    unwritten = outbox.collect()
    assert [p.claimed.id for p in unwritten] == [1, 2]
    assert unwritten[0].reply is first
    assert unwritten[0].elapsed > 0
    assert len(outbox) == 2  # collected is not written


def test_the_successes_at_the_head_are_written_together_up_to_a_batch():
    outbox = Outbox(lambda: None)
    for n in range(COMPLETE_BATCH_SIZE + 5):
        outbox.post_for_reply(claimed(n), success(), 0.0)
    outbox.post_for_reply(claimed(-1), failure(), 0.0)
    outbox.collect()
    assert len(outbox.leading_successes()) == COMPLETE_BATCH_SIZE
    del outbox.unwritten[:COMPLETE_BATCH_SIZE]
    assert len(outbox.leading_successes()) == 5
    del outbox.unwritten[:5]
    assert outbox.leading_successes() == []  # a failure is written on its own


def test_a_give_back_is_not_a_success():
    outbox = Outbox(lambda: None)
    outbox.post_for_reply(claimed(1), None, 0.0)
    outbox.collect()
    assert outbox.leading_successes() == []


def test_a_closed_outbox_refuses_at_once_and_unwritten_replies_can_be_refused():
    outbox = Outbox(lambda: None)
    waiting = outbox.post_for_reply(claimed(1), success(), 0.0)
    outbox.collect()
    outbox.close()
    late = outbox.post_for_reply(claimed(2), success(), 0.0)
    assert late.result(timeout=0) is False
    assert len(outbox) == 1
    outbox.refuse_unwritten()
    assert waiting.result(timeout=0) is False
