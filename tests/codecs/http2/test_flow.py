"""The flow-control ledger against two real h2 endpoints, and the fault helpers."""

from __future__ import annotations

import h2.exceptions
import h2.settings
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Message
from protoproxy_codecs.http2 import Http2Codec

from .peers import H2Pair

REQ = [(":method", "POST"), (":path", "/up"), (":scheme", "http"), (":authority", "t")]
IWS = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE

ops = st.one_of(
    st.tuples(st.just("open")),
    st.tuples(st.just("respond"), st.integers(0, 5)),
    st.tuples(st.just("cdata"), st.integers(0, 5), st.integers(1, 40_000)),
    st.tuples(st.just("sdata"), st.integers(0, 5), st.integers(1, 40_000)),
    st.tuples(st.just("csettings"), st.integers(0, 200_000)),
    st.tuples(st.just("ssettings"), st.integers(0, 200_000)),
    st.tuples(st.just("ccredit"), st.integers(-1, 5), st.integers(1, 30_000)),
    st.tuples(st.just("scredit"), st.integers(-1, 5), st.integers(1, 30_000)),
    st.tuples(st.just("cend"), st.integers(0, 5)),
    st.tuples(st.just("send"), st.integers(0, 5)),
)


def _pick(sids: list[int], i: int) -> int | None:
    return sids[i % len(sids)] if sids else None


def _send_data(conn, sid: int | None, n: int, ended: set[int], end: bool = False) -> None:
    # h2 closes a stream it was misused on, so never send after our own END_STREAM.
    if sid is None or sid in ended:
        return
    try:
        n = min(n, conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        if n > 0:
            conn.send_data(sid, b"d" * n, end_stream=end)
            if end:
                ended.add(sid)
    except h2.exceptions.ProtocolError:
        pass  # closed or not yet allowed: a no-op for this run


def _credit(conn, sid: int | None, n: int) -> None:
    try:
        if sid is None:
            conn.increment_flow_control_window(n)
        else:
            conn.increment_flow_control_window(n, stream_id=sid)
    except (h2.exceptions.ProtocolError, ValueError, KeyError):  # KeyError: h2 forgot it
        pass


def check_ledger(pair: H2Pair) -> None:
    ledger = pair.codec.ledger
    c, s = pair.client, pair.server
    assert ledger.window(UPSTREAM, 0) == c.outbound_flow_control_window
    assert ledger.window(DOWNSTREAM, 0) == s.outbound_flow_control_window
    for sid in pair.codec.stream_ids():
        for sender, receiver, d in ((c, s, UPSTREAM), (s, c, DOWNSTREAM)):
            try:
                sent = sender.local_flow_control_window(sid)
                received = receiver.remote_flow_control_window(sid)
            except h2.exceptions.ProtocolError:
                continue  # closed on an end already
            assert ledger.available(d, sid) == sent == received, (sid, d)


@given(st.lists(ops, max_size=40), st.booleans())
def test_ledger_matches_both_h2_ends(script: list[tuple], auto_ack: bool) -> None:
    pair = H2Pair(auto_ack=auto_ack)
    c, s = pair.client, pair.server
    sids: list[int] = []
    responded: set[int] = set()
    c_ended: set[int] = set()
    s_ended: set[int] = set()
    for op in script:
        name = op[0]
        if name == "open" and len(sids) < 6:
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, REQ)
            sids.append(sid)
        elif name == "respond":
            sid = _pick(sids, op[1])
            if sid is not None and sid not in responded:
                try:
                    s.send_headers(sid, [(":status", "200")])
                    responded.add(sid)
                except h2.exceptions.ProtocolError:
                    pass
        elif name == "cdata":
            _send_data(c, _pick(sids, op[1]), op[2], c_ended)
        elif name == "sdata":
            sid = _pick(sids, op[1])
            _send_data(s, sid if sid in responded else None, op[2], s_ended)
        elif name == "csettings":
            c.update_settings({IWS: op[1]})
        elif name == "ssettings":
            s.update_settings({IWS: op[1]})
        elif name == "ccredit":
            _credit(c, None if op[1] < 0 else _pick(sids, op[1]), op[2])
        elif name == "scredit":
            _credit(s, None if op[1] < 0 else _pick(sids, op[1]), op[2])
        elif name == "cend":
            _send_data(c, _pick(sids, op[1]), 1, c_ended, end=True)
        elif name == "send":
            sid = _pick(sids, op[1])
            _send_data(s, sid if sid in responded else None, 1, s_ended, end=True)
        pair.pump()
        check_ledger(pair)


def _open(pair: H2Pair) -> int:
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_headers(sid, REQ)
    pair.pump()
    return sid


def test_dropped_data_is_credited_back_to_the_sender() -> None:
    pair = H2Pair(auto_ack=True)
    sid = _open(pair)
    dropped: list[Message] = []

    def drop(msg: Message) -> bytes | None:
        if msg.kind == "data" and len(dropped) < 3:
            dropped.append(msg)
            return b""
        return None

    pair.filters[UPSTREAM] = drop
    for _ in range(5):
        pair.client.send_data(sid, b"x" * 10_000)
        pair.pump()
    size = sum(m.info["length"] for m in dropped)
    assert size == 30_000
    pair.inject(DOWNSTREAM, pair.codec.ledger.credit_dropped(UPSTREAM, sid, size))
    pair.pump()
    check_ledger(pair)
    # Without the credit the client would be 30000 bytes short for good.
    assert pair.client.local_flow_control_window(sid) == pair.server.remote_flow_control_window(sid)
    received = sum(len(e.data) for e in pair.server_events if hasattr(e, "flow_controlled_length"))
    assert received == 20_000


def test_injected_data_is_withheld_from_the_receivers_credit() -> None:
    pair = H2Pair(auto_ack=True)
    sid = _open(pair)
    pair.server.send_headers(sid, [(":status", "200")])
    pair.pump()
    ledger = pair.codec.ledger

    def withhold(msg: Message) -> bytes | None:
        return ledger.rewrite_window_update(msg) if msg.kind == "window_update" else None

    pair.filters[UPSTREAM] = withhold  # the client's credit for server DATA flows upstream
    pair.inject(DOWNSTREAM, pair.codec.build_data(DOWNSTREAM, sid, b"i" * 40_000))
    for _ in range(4):
        pair.server.send_data(sid, b"s" * 8_000)
        pair.pump()
    assert ledger.withheld(DOWNSTREAM, 0) == 0  # all paid back
    check_ledger(pair)
    assert pair.server.outbound_flow_control_window == pair.client.inbound_flow_control_window


def test_ledger_exposes_consumed_bytes_and_initial_window() -> None:
    pair = H2Pair()
    sid = _open(pair)
    pair.client.send_data(sid, b"x" * 1234, pad_length=10)
    pair.pump()
    ledger = pair.codec.ledger
    assert ledger.consumed(UPSTREAM, sid) == 1234 + 11
    assert ledger.consumed(UPSTREAM) == 1234 + 11
    pair.server.update_settings({IWS: 1000})
    pair.pump()
    assert ledger.initial_window(UPSTREAM) == 1000
    check_ledger(pair)


def test_overrunning_the_window_is_a_flow_control_error() -> None:
    import pytest

    from protoproxy_codecs.base import DecodeError
    from protoproxy_codecs.http2 import frames as F

    pair = H2Pair()
    sid = _open(pair)
    codec: Http2Codec = pair.codec
    for _ in range(3):
        codec.feed(UPSTREAM, F.build_data(sid, b"x" * 16_384))
    codec.feed(UPSTREAM, F.build_data(sid, b"x" * (65_535 - 3 * 16_384)))
    with pytest.raises(DecodeError) as info:
        codec.feed(UPSTREAM, F.build_data(sid, b"x"))
    assert info.value.reason == "flow_control_error"
