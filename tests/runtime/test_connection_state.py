"""The connection lifecycle table, exhaustively and under random event sequences.

Every (state, event) pair: from a machine brought into that state by real
events, the event either follows the table (and its action exists) or raises
LifecycleError and leaves the machine closed. Random sequences keep the
invariants the runtime relies on: an ended connection never reopens, the
upstream connect is asked for at most once, each direction's EOF is passed on
at most once and a client EOF only once the upstream is there.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.connection_state import (
    LIVE,
    TRANSITIONS,
    ChooseCodec,
    Close,
    Command,
    Connect,
    Connected,
    ConnectionMachine,
    DropUpstream,
    Event,
    Finish,
    ForwardEof,
    LifecycleError,
    State,
)
from protoproxy_codecs.base import Direction

E, S = Event, State
UPSTREAM, DOWNSTREAM = Direction.UPSTREAM, Direction.DOWNSTREAM

#: for each state, event paths from NEW that reach it (several where flags differ)
PATHS: dict[State, list[list[Event]]] = {
    S.NEW: [[]],
    S.HELLO: [[E.ACCEPT_TLS]],
    S.TLS_HANDSHAKE: [[E.ACCEPT_TLS, E.HELLO_TERMINATE]],
    S.SNIFF: [
        [E.ACCEPT_SNIFF],
        [E.ACCEPT_TLS, E.HELLO_TERMINATE, E.TLS_READY_SNIFF],
        [E.ACCEPT_SNIFF, E.EOF_DOWNSTREAM],
    ],
    S.SNIFF_CONNECTED: [[E.ACCEPT_SNIFF, E.UPSTREAM_READY]],
    S.CONNECTING: [
        [E.ACCEPT],
        [E.ACCEPT_TLS, E.HELLO_PASSTHROUGH],
        [E.ACCEPT_TLS, E.HELLO_TERMINATE, E.TLS_READY],
        [E.ACCEPT_SNIFF, E.SNIFFED],
        [E.ACCEPT_SNIFF, E.EOF_UPSTREAM],  # early EOF pending
    ],
    S.OPEN: [
        [E.ACCEPT, E.UPSTREAM_READY],
        [E.ACCEPT, E.EOF_UPSTREAM, E.UPSTREAM_READY],
        [E.ACCEPT_SNIFF, E.UPSTREAM_READY, E.SNIFFED],
        [E.ACCEPT, E.UPSTREAM_READY, E.EOF_DOWNSTREAM],
    ],
    S.CLOSED: [
        [E.ACCEPT, E.FAIL],
        [E.ACCEPT, E.UPSTREAM_READY, E.CLOSE],
        [E.ACCEPT_TLS, E.EOF_UPSTREAM],
    ],
    S.FINISHED: [[E.ACCEPT, E.UPSTREAM_READY, E.CLOSE, E.SOCKETS_GONE]],
}

PAIRS = list(itertools.product(State, Event))


def feed(machine: ConnectionMachine, event: Event) -> list[Command]:
    return machine.handle(event, protocol="tcp", reason="test", detail="")


def test_every_state_has_a_path() -> None:
    assert set(PATHS) == set(State)
    for state, paths in PATHS.items():
        for path in paths:
            m = ConnectionMachine()
            for event in path:
                feed(m, event)
            assert m.state is state, path


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=lambda x: x.name)
@given(data=st.data())
def test_every_pair_is_valid_or_a_defined_error(
    state: State, event: Event, data: st.DataObject
) -> None:
    machine = ConnectionMachine()
    for e in data.draw(st.sampled_from(PATHS[state]), label="path"):
        feed(machine, e)
    assert machine.state is state
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(LifecycleError):
            feed(machine, event)
        assert machine.state is S.CLOSED
        assert machine.end_reason == "internal_error"
        assert machine.crash() == [Close("internal_error", graceful=True)]
        return
    commands = feed(machine, event)
    assert machine.state is expected
    assert all(isinstance(c, Command.__args__) for c in commands)  # type: ignore[attr-defined]
    closes = [c for c in commands if isinstance(c, Close)]
    if state in LIVE and expected is S.CLOSED:
        assert len(closes) == 1 and machine.end_reason == closes[0].reason
    else:
        assert not closes
    if expected in LIVE:
        assert machine.end_reason is None


def test_table_has_errors_and_endings_everywhere() -> None:
    """The table is not all-permissive, and every live state can end."""
    missing = [p for p in PAIRS if p not in TRANSITIONS]
    assert (S.OPEN, E.SNIFFED) in missing and (S.NEW, E.UPSTREAM_READY) in missing
    for state in LIVE:
        for event in (E.CLOSE, E.FAIL, E.IDLE_TIMEOUT):
            assert TRANSITIONS[(state, event)] is S.CLOSED
    assert all(TRANSITIONS[(S.FINISHED, e)] is S.FINISHED for e in Event)


@given(st.lists(st.sampled_from(list(Event)), max_size=30))
def test_random_sequences_keep_the_invariants(events: list[Event]) -> None:
    machine = ConnectionMachine()
    seen: list[Command] = []
    ended = False
    for event in events:
        before = machine.state
        try:
            commands = feed(machine, event)
        except LifecycleError:
            assert before in LIVE  # ended machines take everything
            assert machine.state is S.CLOSED
            commands = machine.crash()  # what the crash boundary does next
        assert all(isinstance(c, Command.__args__) for c in commands)  # type: ignore[attr-defined]
        seen.extend(commands)
        if ended:
            assert machine.state not in LIVE, "an ended connection reopened"
            assert machine.end_reason is not None
        if before is S.FINISHED:
            # only a socket that connected too late is still to be closed
            assert machine.state is S.FINISHED
            assert all(isinstance(c, DropUpstream) for c in commands)
        ended = ended or machine.state not in LIVE
        assert (machine.end_reason is None) == (machine.state in LIVE)

    kinds = [type(c) for c in seen]
    assert kinds.count(Connect) <= 1
    assert kinds.count(ChooseCodec) <= 1
    assert kinds.count(Connected) <= 1
    assert kinds.count(Close) <= 1
    assert kinds.count(Finish) <= 1
    if Finish in kinds:
        assert kinds.index(Close) < kinds.index(Finish)
    if Connected in kinds:
        assert kinds.index(Connect) < kinds.index(Connected)
        if Close in kinds:  # the socket is taken into use only while live
            assert kinds.index(Connected) < kinds.index(Close)
    for direction in (UPSTREAM, DOWNSTREAM):
        eofs = [i for i, c in enumerate(seen) if c == ForwardEof(direction)]
        assert len(eofs) <= 1
        if eofs:  # a half-close goes to a socket that exists (or is being made)
            anchor = Connected if direction is UPSTREAM else Connect
            assert anchor in kinds and kinds.index(anchor) < eofs[0]


def test_early_eof_is_passed_on_after_the_upstream() -> None:
    m = ConnectionMachine()
    assert feed(m, E.ACCEPT) == [ChooseCodec("tcp"), Connect()]
    assert feed(m, E.EOF_UPSTREAM) == []
    assert m.early_eof
    commands = feed(m, E.UPSTREAM_READY)
    assert commands[0] == Connected()
    assert commands[-1] == ForwardEof(UPSTREAM)
    assert not m.early_eof and m.eof == [True, False]


@pytest.mark.parametrize(
    "event", [E.HEADER_TIMEOUT, E.FRAME_TIMEOUT, E.MEMORY_SHED], ids=lambda e: e.name
)
def test_limits_end_every_live_state_as_an_error_named_by_the_limit(event: Event) -> None:
    """A crossed deadline or budget is an abnormal end whose reason is the limit."""
    for state, paths in PATHS.items():
        if state not in LIVE:
            continue
        for graceful in (True, False):
            machine = ConnectionMachine()
            for step in paths[0]:
                feed(machine, step)
            commands = machine.handle(event, detail="why", graceful=graceful)
            assert machine.state is S.CLOSED
            assert machine.end_reason == event.value
            assert commands == [Close(event.value, "why", graceful=graceful, error=True)]
