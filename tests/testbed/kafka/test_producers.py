"""Idempotent producer sequence rules, against Kafka's semantics."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from testbed.kafka import errors
from testbed.kafka.producers import INT32_MAX, ProducerStates


def _send_all(states: ProducerStates, pid: int, sizes: list[int], first_seq: int = 0):
    seq, offset, written = first_seq, 0, []
    for size in sizes:
        assert states.check(pid, 0, "t", 0, seq, size) == (errors.NONE, -1)
        states.record(pid, 0, "t", 0, seq, size, offset)
        written.append((seq, size, offset))
        seq = (seq + size) % (INT32_MAX + 1)
        offset += size
    return written, seq


@given(st.lists(st.integers(1, 50), min_size=1, max_size=20), st.data())
def test_retry_of_any_of_last_five_batches_is_acked_with_its_offset(sizes, data):
    states = ProducerStates()
    _, pid, _ = states.init_producer()
    written, next_seq = _send_all(states, pid, sizes)
    i = data.draw(st.integers(0, len(written) - 1))
    seq, size, offset = written[i]
    verdict = states.check(pid, 0, "t", 0, seq, size)
    if i >= len(written) - 5:
        assert verdict == (errors.NONE, offset)
    else:
        assert verdict == (errors.OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
    # A gap is out of order; the next expected sequence is still accepted.
    assert states.check(pid, 0, "t", 0, next_seq + 1, 1)[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert states.check(pid, 0, "t", 0, next_seq, 1) == (errors.NONE, -1)


def test_sequence_wraps_at_int32_max():
    states = ProducerStates()
    _, pid, _ = states.init_producer()
    states.record(pid, 0, "t", 0, 0, 1, 0)
    # Pretend a long history: the last batch ended exactly at INT32_MAX.
    states.record(pid, 0, "t", 0, INT32_MAX - 9, 10, 1)
    assert states.check(pid, 0, "t", 0, 0, 5) == (errors.NONE, -1)


def test_first_batch_must_start_at_zero_and_epochs_fence():
    states = ProducerStates()
    _, pid, epoch = states.init_producer()
    assert states.check(pid, epoch, "t", 0, 3, 1)[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    states.record(pid, epoch + 1, "t", 0, 0, 2, 0)
    assert states.check(pid, epoch, "t", 0, 2, 1)[0] == errors.INVALID_PRODUCER_EPOCH
    assert states.check(pid, epoch + 2, "t", 0, 2, 1)[0] == errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert states.check(pid, epoch + 2, "t", 0, 0, 1) == (errors.NONE, -1)


def test_init_producer_bumps_epoch_of_a_known_producer():
    states = ProducerStates(first_producer_id=42)
    assert states.init_producer() == (errors.NONE, 42, 0)
    assert states.init_producer() == (errors.NONE, 43, 0)
    assert states.init_producer(42, 0) == (errors.NONE, 42, 1)
    assert states.init_producer(42, 0)[0] == errors.INVALID_PRODUCER_EPOCH
    assert states.init_producer(99, 0)[0] == errors.UNKNOWN_PRODUCER_ID
