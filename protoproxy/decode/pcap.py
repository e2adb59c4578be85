"""Packets out of pcap and pcapng files: timestamps, addresses, TCP segments.

scapy reads the files (both formats, via RawPcapReader's magic check); the
link, IP and TCP headers are split here with struct, since building scapy
layers per packet costs about 100x more than these few unpacks (measured in
bench/decode.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scapy.utils import RawPcapNgReader, RawPcapReader

# Link types (https://www.tcpdump.org/linktypes.html).
DLT_NULL = 0
DLT_EN10MB = 1
DLT_RAW = 101
DLT_RAW_OLD = (12, 14)
DLT_LOOP = 108
DLT_LINUX_SLL = 113
DLT_IPV4 = 228
DLT_IPV6 = 229
DLT_LINUX_SLL2 = 276

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_VLAN = (0x8100, 0x88A8)
_U16 = struct.Struct(">H")
_TCP = struct.Struct(">HHIIBB")
_IPV4 = struct.Struct(">BBHHHBBH4s4s")

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
#: scapy reads at most this much of a frame (its default, the MTU, would cut loopback segments)
_MAX_FRAME = 262144


@dataclass(slots=True)
class Segment:
    """One TCP segment; `missing` counts payload bytes the snaplen cut off."""

    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int
    payload: bytes
    missing: int = 0


def _ip_payload(linktype: int, data: bytes) -> tuple[int, int] | None:
    """(IP version, offset of the IP header) for a frame, None if not IP."""
    if linktype == DLT_EN10MB:
        if len(data) < 14:
            return None
        off = 12
        eth = _U16.unpack_from(data, off)[0]
        while eth in _VLAN and len(data) >= off + 6:
            off += 4
            eth = _U16.unpack_from(data, off)[0]
        off += 2
    elif linktype in (DLT_NULL, DLT_LOOP):
        if len(data) < 4:
            return None
        fam = data[0] | data[3]  # AF in host order (NULL) or network order (LOOP)
        off = 4
        return (4 if fam == 2 else 6 if fam in (24, 28, 30) else 0), off
    elif linktype == DLT_LINUX_SLL:
        if len(data) < 16:
            return None
        eth, off = _U16.unpack_from(data, 14)[0], 16
    elif linktype == DLT_LINUX_SLL2:
        if len(data) < 20:
            return None
        eth, off = _U16.unpack_from(data, 0)[0], 20
    elif linktype in (DLT_RAW, DLT_IPV4, DLT_IPV6, *DLT_RAW_OLD):
        return (data[0] >> 4 if data else 0), 0
    else:
        return None
    return (4 if eth == _ETH_IPV4 else 6 if eth == _ETH_IPV6 else 0), off


def parse(linktype: int, ts_ns: int, data: bytes, wirelen: int) -> Segment | None:
    """The TCP segment in one captured frame, or None (not IPv4/IPv6 TCP, or cut short)."""
    ip = _ip_payload(linktype, data)
    if ip is None:
        return None
    version, off = ip
    if version == 4:
        if len(data) < off + 20:
            return None
        vihl, _tos, total, _id, frag, _ttl, proto, _sum, s, d = _IPV4.unpack_from(data, off)
        if proto != 6 or frag & 0x1FFF:
            return None
        ihl = (vihl & 0x0F) * 4
        src, dst = ".".join(map(str, s)), ".".join(map(str, d))
        tcp = off + ihl
        end = off + total
    elif version == 6:
        if len(data) < off + 40 or data[off + 6] != 6:
            return None  # extension headers are not followed
        plen = _U16.unpack_from(data, off + 4)[0]
        src = _v6(data[off + 8 : off + 24])
        dst = _v6(data[off + 24 : off + 40])
        tcp = off + 40
        end = tcp + plen
    else:
        return None
    if len(data) < tcp + 20:
        return None
    sport, dport, seq, _ack, doff, flags = _TCP.unpack_from(data, tcp)
    start = tcp + (doff >> 4) * 4
    # `end` from the IP length, not the frame: Ethernet pads short frames.
    wire_end = end
    captured_end = min(end, len(data))
    missing = max(wire_end - max(captured_end, start), 0)
    payload = data[start:captured_end] if captured_end > start else b""
    return Segment(ts_ns, src, sport, dst, dport, seq, flags, payload, missing)


def _v6(b: bytes) -> str:
    return ":".join(f"{b[i] << 8 | b[i + 1]:x}" for i in range(0, 16, 2))


def segments(path: str | Path) -> Iterator[tuple[Segment, int]]:
    """Every TCP segment of a capture, with the file offset reached (for progress)."""
    reader = RawPcapReader(str(path))  # becomes a RawPcapNgReader on pcapng magic
    try:
        ng = isinstance(reader, RawPcapNgReader)
        nano = getattr(reader, "nano", False)
        linktype = getattr(reader, "linktype", DLT_EN10MB)
        f = reader.f
        while True:
            try:
                item = reader._read_packet(size=_MAX_FRAME)
            except EOFError:
                break
            if item is None:
                continue
            data, meta = item
            if ng:
                res = meta.tsresol or 1_000_000
                ticks = (meta.tshigh << 32) | meta.tslow
                ts_ns = ticks * 1_000_000_000 // res
                seg = parse(meta.linktype, ts_ns, data, meta.wirelen)
            else:
                ts_ns = meta.sec * 1_000_000_000 + meta.usec * (1 if nano else 1000)
                seg = parse(linktype, ts_ns, data, meta.wirelen)
            if seg is not None:
                yield seg, f.tell()
    finally:
        reader.close()
