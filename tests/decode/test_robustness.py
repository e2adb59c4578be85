"""Damaged captures: reordered, duplicated, dropped and truncated segments.

Never a crash; every Kafka exchange whose bytes are all present still decodes
(after a hole the stream resyncs on the next proved frame boundary).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy.decode.decoder import decode, rows

from .relay import Chunk, packets, write

# A Kafka conversation small enough to mutate: kafka-python's own requests
# (real client bytes, recorded by the conftest relay) would need the testbed in
# every example; the fixture capture holds them.
FIXTURE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "captures" / "kafka-python-producer.pcap"
)


def _conversation() -> list[Chunk]:
    from scapy.all import TCP, rdpcap  # type: ignore[attr-defined]

    out: list[Chunk] = []
    for p in rdpcap(str(FIXTURE)):
        payload = bytes(p[TCP].payload)
        if payload:
            out.append((int(p.time * 1e9), 0 if p[TCP].dport == 9092 else 1, payload))
    return out


CONV = _conversation()


@settings(max_examples=12, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["swap", "dup", "drop", "trunc"]), st.integers(0, 200)),
        max_size=4,
    ),
    st.integers(16, 256),
)
def test_damaged_captures_decode_what_is_complete(ops: list[tuple[str, int]], mss: int) -> None:
    pkts = packets(CONV, mss=mss)
    data_idx = lambda: [i for i, p in enumerate(pkts) if p.haslayer("Raw")]  # noqa: E731
    damaged: set[int] = set()  # correlation-carrying chunks whose bytes are lost
    lost = False
    for op, k in ops:
        idx = data_idx()
        i = idx[k % len(idx)]
        if op == "swap" and i + 1 < len(pkts):
            pkts[i], pkts[i + 1] = pkts[i + 1], pkts[i]
        elif op == "dup":
            pkts.insert(i + 1, pkts[i].copy())
        elif op in ("drop", "trunc"):
            lost = True
            damaged.add(i)
            if op == "drop":
                del pkts[i]
            else:
                p = pkts[i]
                raw = bytes(p["Raw"].load)
                p["Raw"].load = raw[
                    : len(raw) // 2
                ]  # the IP length now says less: a drop of the tail
                del p["IP"].len, p["IP"].chksum, p["TCP"].chksum
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.pcap"
        write(str(path), pkts)
        streams = decode(path)
        got = list(rows(streams))
    full = [1, 2, 3]
    corr = [r["correlation_id"] for r in got]
    assert len(corr) == len(set(corr))
    assert set(corr) <= set(full)
    if not lost:
        assert corr == full
        assert not streams[0].gaps
    else:
        # each lost segment can cost at most the exchange it was in and the one after
        # (resync needs a frame to prove the boundary): never everything, when one is lost
        assert len(corr) >= len(full) - 2 * len(damaged) or len(damaged) >= 2
