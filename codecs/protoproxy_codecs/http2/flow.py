"""The flow-control credit ledger, per direction and per stream.

The ledger holds what each *sender* may still send, as the relayed byte stream
dictates: DATA (padding included) debits, WINDOW_UPDATE from the receiver
credits, and SETTINGS_INITIAL_WINDOW_SIZE moves every stream window by the
delta. A receiver's setting takes effect at the sender's SETTINGS ACK, because
the ACK marks the exact point in the sender's byte stream after which the
sender uses the new value; that keeps the ledger exact, not merely close.

Faults change the byte stream, so they must settle the books (DESIGN, "Flow
control"): dropped DATA is credited back to its sender by the proxy, and
injected DATA is withheld from the receiver's next WINDOW_UPDATEs.
"""

from __future__ import annotations

import struct

from ..base import DecodeError, Direction, Message
from .frames import DEFAULT_WINDOW, MAX_WINDOW, build_window_update

_U32 = struct.Struct(">L")


class FlowLedger:
    """Windows indexed by the direction DATA travels in; stream 0 is the connection."""

    __slots__ = ("_debt", "_initial", "_used", "_win", "enforce")

    def __init__(self, enforce: bool = True) -> None:
        self._win: tuple[dict[int, int], dict[int, int]] = (
            {0: DEFAULT_WINDOW},
            {0: DEFAULT_WINDOW},
        )
        self._used: tuple[dict[int, int], dict[int, int]] = ({0: 0}, {0: 0})
        self._debt: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._initial = [DEFAULT_WINDOW, DEFAULT_WINDOW]
        #: Raise flow_control_error when a sender overruns its window.
        self.enforce = enforce

    # -- queries ---------------------------------------------------------------

    def window(self, direction: Direction, stream: int = 0) -> int:
        """Send window of `stream` (0: connection) for DATA travelling in `direction`."""
        return self._win[direction][stream]

    def available(self, direction: Direction, stream: int) -> int:
        """What the sender may send now on `stream`: min(stream, connection)."""
        win = self._win[direction]
        return min(win[0], win[stream])

    def consumed(self, direction: Direction, stream: int = 0) -> int:
        """Flow-controlled bytes sent so far on `stream` (0: the whole connection)."""
        return self._used[direction].get(stream, 0)

    def initial_window(self, direction: Direction) -> int:
        return self._initial[direction]

    def tracks(self, stream: int) -> bool:
        return stream in self._win[0]

    def withheld(self, direction: Direction, stream: int = 0) -> int:
        """Credit still to be withheld for injected DATA travelling in `direction`."""
        return self._debt[direction].get(stream, 0)

    # -- relayed traffic (called by the codec) ---------------------------------

    # open/close run once per stream each: unrolled, no loop or tuple per call.
    def open_stream(self, stream: int) -> None:
        win, used = self._win, self._used
        win[0][stream] = self._initial[0]
        win[1][stream] = self._initial[1]
        used[0][stream] = 0
        used[1][stream] = 0

    def close_stream(self, stream: int) -> None:
        win, used, debt = self._win, self._used, self._debt
        win[0].pop(stream, None)
        win[1].pop(stream, None)
        used[0].pop(stream, None)
        used[1].pop(stream, None)
        if debt[0] or debt[1]:
            debt[0].pop(stream, None)
            debt[1].pop(stream, None)

    def on_data(self, direction: Direction, stream: int, size: int) -> None:
        win = self._win[direction]
        used = self._used[direction]
        conn = win[0] - size
        win[0] = conn
        used[0] += size
        if self.enforce and conn < 0:
            raise DecodeError(
                f"DATA overran the connection window by {-conn}", "flow_control_error"
            )
        sw = win.get(stream)
        if sw is not None:
            sw -= size
            win[stream] = sw
            used[stream] += size
            if self.enforce and sw < 0:
                raise DecodeError(
                    f"DATA overran stream {stream}'s window by {-sw}", "flow_control_error"
                )

    def on_window_update(self, data_direction: Direction, stream: int, increment: int) -> None:
        win = self._win[data_direction]
        cur = win.get(stream)
        if cur is None:
            return  # a closed stream: late credit is legal and meaningless
        cur += increment
        if cur > MAX_WINDOW:
            raise DecodeError(f"window of stream {stream} exceeds 2^31-1", "flow_control_error")
        win[stream] = cur

    def set_initial_window(self, data_direction: Direction, value: int) -> None:
        """A SETTINGS_INITIAL_WINDOW_SIZE for DATA in `data_direction` took effect."""
        if value > MAX_WINDOW:
            raise DecodeError("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1", "flow_control_error")
        delta = value - self._initial[data_direction]
        self._initial[data_direction] = value
        if not delta:
            return
        win = self._win[data_direction]
        for stream, cur in win.items():
            if stream:
                cur += delta
                if cur > MAX_WINDOW:
                    raise DecodeError(
                        "initial window change overflows a stream window", "flow_control_error"
                    )
                win[stream] = cur

    # -- fault support -----------------------------------------------------------

    def credit_dropped(self, direction: Direction, stream: int, size: int) -> bytes:
        """WINDOW_UPDATE frames to send to the sender of DATA the proxy dropped.

        `size` is the dropped frames' flow-controlled length (padding included).
        The ledger is credited as if the receiver had done it. Write the result
        in direction `direction.other` (toward the DATA's sender).
        """
        if size <= 0:
            return b""
        out = build_window_update(0, size)
        self.on_window_update(direction, 0, size)
        if stream in self._win[direction]:
            out += build_window_update(stream, size)
            self.on_window_update(direction, stream, size)
        return out

    def withhold(self, direction: Direction, stream: int, size: int) -> None:
        """The proxy injected `size` bytes of DATA travelling in `direction`.

        The receiver will credit them back though the sender never spent them,
        so that much credit must be cut from the receiver's next WINDOW_UPDATEs
        (see `rewrite_window_update`).
        """
        if size <= 0:
            return
        debt = self._debt[direction]
        debt[0] = debt.get(0, 0) + size
        if stream in self._win[direction]:
            debt[stream] = debt.get(stream, 0) + size

    def rewrite_window_update(self, message: Message) -> bytes | None:
        """For a WINDOW_UPDATE message just fed: None to relay it as is, else its
        replacement (b"" to drop it), with the withheld part taken off the books."""
        info = message.info
        assert info is not None and message.kind == "window_update"
        data_direction = message.direction.other
        debt = self._debt[data_direction]
        stream = info["stream_id"]
        owed = debt.get(stream, 0)
        if not owed:
            return None
        increment = info["increment"]
        take = min(owed, increment)
        if owed == take:
            del debt[stream]
        else:
            debt[stream] = owed - take
        win = self._win[data_direction]
        if stream in win:
            win[stream] -= take
        left = increment - take
        return build_window_update(stream, left) if left else b""
