"""pcapng blocks (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html).

Written here rather than through scapy's `RawPcapNgWriter`: that writer
costs ~14 µs a packet (one `write` and several `struct.pack` per packet,
float timestamps at µs resolution), these encoders ~1 µs into one buffer
per batch (measured in bench/tap_cost.py's `--writers`). pcapng over
classic pcap for what the format gives a tap: one interface per leg
(``client`` and ``upstream``), nanosecond timestamps (``if_tsresol`` 9),
the packet direction, and comments (a TLS leg's first packet says its bytes
are decrypted). A file may hold several sections (SHB + IDBs + EPBs): a
rotated tap's files concatenated are one valid capture.
"""

from __future__ import annotations

import struct

#: LINKTYPE_RAW: packets start at the IP header (no invented Ethernet header)
LINKTYPE_RAW = 101
SNAPLEN = 262144
#: EPB flags: inbound / outbound, as seen from the proxy
INBOUND, OUTBOUND = 1, 2

_BLOCK = struct.Struct("<II")
_EPB = struct.Struct("<IIIIIII")  # type, length, ifid, ts high, ts low, caplen, origlen
_OPT = struct.Struct("<HH")
_U32 = struct.Struct("<I")


def _option(code: int, value: bytes) -> bytes:
    pad = -len(value) % 4
    return _OPT.pack(code, len(value)) + value + b"\0" * pad


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return _BLOCK.pack(kind, length) + body + _U32.pack(length)


def section(application: str) -> bytes:
    """A Section Header Block: byte-order magic, version 1.0, unknown length."""
    options = _option(4, application.encode()) + _OPT.pack(0, 0)  # shb_userappl
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def interface(name: str, description: str) -> bytes:
    """An Interface Description Block with nanosecond timestamps."""
    options = (
        _option(2, name.encode())  # if_name
        + _option(3, description.encode())  # if_description
        + _option(9, b"\x09")  # if_tsresol: 10^-9
        + _OPT.pack(0, 0)
    )
    return _block(1, struct.pack("<HHI", LINKTYPE_RAW, 0, SNAPLEN) + options)


#: the options of a packet without a comment, by direction flag (epb_flags, end)
_PLAIN = {f: _OPT.pack(2, 4) + _U32.pack(f) + _OPT.pack(0, 0) for f in (0, INBOUND, OUTBOUND)}
_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")


def packet(ifid: int, ts_ns: int, data: bytes, flags: int, comment: str | None = None) -> bytes:
    """An Enhanced Packet Block: the packet, its direction flag, an optional comment."""
    if comment:
        options = (
            _OPT.pack(2, 4) + _U32.pack(flags) + _option(1, comment.encode()) + _OPT.pack(0, 0)
        )
    else:
        options = _PLAIN[flags]
    n = len(data)
    pad = _PADS[n & 3]
    length = 32 + n + len(pad) + len(options)
    head = _EPB.pack(6, length, ifid, ts_ns >> 32, ts_ns & 0xFFFFFFFF, n, n)
    return b"".join((head, data, pad, options, _U32.pack(length)))
