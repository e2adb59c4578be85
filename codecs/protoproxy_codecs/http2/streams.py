"""Stream states as data: one table of (state, event) -> next state.

The proxy sees both ends, so a state here is the stream as a whole rather than
one endpoint's view (RFC 9113 5.1): "half closed up" means the client has sent
END_STREAM, "half closed down" the server. A pair missing from the table is a
protocol error. Keeping the rules in one table (the h11 `_state.py` idea) makes
them reviewable at a glance and lets a test walk every (state, event) pair.
"""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    IDLE = 0
    RESERVED = 1  # promised by PUSH_PROMISE; only the server may send HEADERS
    OPEN = 2
    HALF_CLOSED_UP = 3  # client sent END_STREAM
    HALF_CLOSED_DOWN = 4  # server sent END_STREAM
    CLOSED = 5


class Event(enum.IntEnum):
    HEADERS_UP = 0
    HEADERS_DOWN = 1
    DATA_UP = 2
    DATA_DOWN = 3
    END_UP = 4  # END_STREAM flag on a frame sent upstream, applied after its frame event
    END_DOWN = 5
    RST = 6  # RST_STREAM either way
    PUSH_PROMISE = 7  # the promised stream is reserved
    WINDOW_UPDATE = 8  # either way
    PRIORITY = 9  # either way


S, E = State, Event

# Everything not listed is a protocol error.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.IDLE, E.HEADERS_UP): S.OPEN,
    (S.IDLE, E.PUSH_PROMISE): S.RESERVED,
    (S.IDLE, E.PRIORITY): S.IDLE,
    (S.RESERVED, E.HEADERS_DOWN): S.HALF_CLOSED_UP,
    (S.RESERVED, E.RST): S.CLOSED,
    (S.RESERVED, E.PRIORITY): S.RESERVED,
    (S.RESERVED, E.WINDOW_UPDATE): S.RESERVED,
    (S.OPEN, E.HEADERS_UP): S.OPEN,
    (S.OPEN, E.HEADERS_DOWN): S.OPEN,
    (S.OPEN, E.DATA_UP): S.OPEN,
    (S.OPEN, E.DATA_DOWN): S.OPEN,
    (S.OPEN, E.END_UP): S.HALF_CLOSED_UP,
    (S.OPEN, E.END_DOWN): S.HALF_CLOSED_DOWN,
    (S.OPEN, E.RST): S.CLOSED,
    (S.OPEN, E.WINDOW_UPDATE): S.OPEN,
    (S.OPEN, E.PRIORITY): S.OPEN,
    (S.HALF_CLOSED_UP, E.HEADERS_DOWN): S.HALF_CLOSED_UP,
    (S.HALF_CLOSED_UP, E.DATA_DOWN): S.HALF_CLOSED_UP,
    (S.HALF_CLOSED_UP, E.END_DOWN): S.CLOSED,
    (S.HALF_CLOSED_UP, E.RST): S.CLOSED,
    (S.HALF_CLOSED_UP, E.WINDOW_UPDATE): S.HALF_CLOSED_UP,
    (S.HALF_CLOSED_UP, E.PRIORITY): S.HALF_CLOSED_UP,
    (S.HALF_CLOSED_DOWN, E.HEADERS_UP): S.HALF_CLOSED_DOWN,
    (S.HALF_CLOSED_DOWN, E.DATA_UP): S.HALF_CLOSED_DOWN,
    (S.HALF_CLOSED_DOWN, E.END_UP): S.CLOSED,
    (S.HALF_CLOSED_DOWN, E.RST): S.CLOSED,
    (S.HALF_CLOSED_DOWN, E.WINDOW_UPDATE): S.HALF_CLOSED_DOWN,
    (S.HALF_CLOSED_DOWN, E.PRIORITY): S.HALF_CLOSED_DOWN,
    # A closed stream may still see frames its peer sent before learning of the
    # close (RFC 9113 5.1, "closed"): the proxy cannot tell those races apart
    # from errors, so it relays them. They only reach this row while a stream
    # object is still held; forgotten streams are handled the same way.
    **{(S.CLOSED, e): S.CLOSED for e in Event if e is not E.PUSH_PROMISE},
}

#: TRANSITIONS as the codec reads it: for each event, {state: next state} of the
#: event's legal pairs. One dict get per frame on the hot path (no tuple key to
#: build and hash), and the only form anything reads: `next_state` below, the
#: codec's `_transition` and its inlined DATA/HEADERS steps all go through it.
NEXT: tuple[dict[int, int], ...] = tuple(
    {int(s): int(new) for (s, ev), new in TRANSITIONS.items() if ev is e} for e in Event
)


def next_state(state: int, event: int) -> int:
    """The next state, or -1 when the event is a protocol error in `state`."""
    return NEXT[event].get(state, -1)
