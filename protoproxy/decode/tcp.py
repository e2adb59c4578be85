"""TCP reassembly: segments in capture order to in-order bytes per direction.

Out-of-order segments wait (bounded) for the bytes before them; retransmitted
and overlapping bytes are trimmed against what was already delivered; a hole
that never fills (a dropped segment, a snaplen cut) becomes a `Gap` event of
known size, after which delivery continues. Own code rather than scapy's
sessions: those build scapy packets per segment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .pcap import FIN, RST, SYN, Segment

#: Out-of-order segments held per direction before the hole is given up as lost.
MAX_PENDING = 256
_MOD = 1 << 32


@dataclass(slots=True)
class Gap:
    nbytes: int
    ts_ns: int


@dataclass(slots=True)
class _Dir:
    next_seq: int | None = None
    pending: dict[int, tuple[bytes, int, int]] = field(default_factory=dict)
    fin: bool = False


# (direction 0 = client to server, payload or Gap, ts_ns)
Sink = Callable[[int, "bytes | Gap", int], None]


class Flow:
    """Both directions of one TCP connection; `client` decided by SYN or port hints."""

    def __init__(self, client: tuple[str, int], server: tuple[str, int], sink: Sink) -> None:
        self.client = client
        self.server = server
        self.sink = sink
        self.dirs = (_Dir(), _Dir())
        self.syn_at: int | None = None
        self.synack_at: int | None = None
        self.saw_syn = False

    def add(self, seg: Segment) -> None:
        d = 0 if (seg.src, seg.sport) == self.client else 1
        st = self.dirs[d]
        seq = seg.seq
        if seg.flags & SYN:
            self.saw_syn = True
            if d == 0:
                self.syn_at = self.syn_at or seg.ts_ns
            else:
                self.synack_at = self.synack_at or seg.ts_ns
            seq = (seq + 1) % _MOD
            if st.next_seq is None:
                st.next_seq = seq
        if st.next_seq is None:
            st.next_seq = seq  # mid-stream start: the first byte seen starts the stream
        if seg.payload or seg.missing:
            self._data(d, st, seq, seg.payload, seg.missing, seg.ts_ns)
        if seg.flags & (FIN | RST):
            st.fin = True

    def _data(self, d: int, st: _Dir, seq: int, data: bytes, missing: int, ts: int) -> None:
        assert st.next_seq is not None
        off = (seq - st.next_seq + (1 << 31)) % _MOD - (1 << 31)
        if off > 0:
            if seq not in st.pending or len(st.pending[seq][0]) < len(data):
                st.pending[seq] = (data, missing, ts)
            if len(st.pending) > MAX_PENDING:
                self._skip(d, st)
            return
        self._deliver(d, st, data, missing, ts, -off)
        self._drain(d, st)

    def _deliver(self, d: int, st: _Dir, data: bytes, missing: int, ts: int, trim: int) -> None:
        assert st.next_seq is not None
        total = len(data) + missing
        if trim >= total:
            return  # a retransmission of bytes already delivered
        if trim < len(data):
            chunk = data[trim:]
            self.sink(d, chunk, ts)
            st.next_seq = (st.next_seq + len(chunk)) % _MOD
            trim = 0
        else:
            trim -= len(data)
        if missing - trim > 0:
            self.sink(d, Gap(missing - trim, ts), ts)
            st.next_seq = (st.next_seq + missing - trim) % _MOD

    def _drain(self, d: int, st: _Dir) -> None:
        while st.pending:
            assert st.next_seq is not None
            best = None
            for s in st.pending:
                off = (s - st.next_seq + (1 << 31)) % _MOD - (1 << 31)
                if off <= 0:
                    best = (s, off)
                    break
            if best is None:
                return
            data, missing, ts = st.pending.pop(best[0])
            self._deliver(d, st, data, missing, ts, -best[1])

    def _skip(self, d: int, st: _Dir) -> None:
        """Give up on the hole before the earliest held segment: report it, move on."""
        assert st.next_seq is not None
        nxt = st.next_seq
        first = min(st.pending, key=lambda s: (s - nxt) % _MOD)
        hole = (first - nxt) % _MOD
        ts = st.pending[first][2]
        self.sink(d, Gap(hole, ts), ts)
        st.next_seq = first
        self._drain(d, st)

    def finish(self) -> None:
        """End of capture: holes still open are gaps."""
        for d, st in enumerate(self.dirs):
            while st.pending:
                self._skip(d, st)
