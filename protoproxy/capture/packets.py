"""TCP/IP packets of one synthesised connection: handshake, data, FIN, RST.

A tap shows each leg of a proxied connection (client<->proxy,
proxy<->upstream) as a TCP connection Wireshark can follow, so the packets
carry the sockets' own addresses and ports, real sequence and
acknowledgement numbers, a SYN/SYN-ACK/ACK handshake and FIN or RST at the
end. They are built with `struct`, not scapy layers: building a scapy
packet costs ~100x more than these few packs (docs/captures.md#taps has the
figures), and the writer thread shares the GIL with the data path.

Side 0 is the connection's initiator (the client on the client leg, the
proxy on the upstream leg); side 1 its acceptor. Bytes a full tap queue
dropped are skipped (`skip`): the sequence numbers jump, so Wireshark and
`protoproxy decode` see the hole for what it is.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
#: payload per segment: fits a 16-bit IP length with headers to spare
MSS = 65000
#: window scale announced in the SYNs: 65535 << 14 is 1 GiB, so no synthesised
#: flight of bytes ever fills the window Wireshark computes
WSCALE = 14
WINDOW = 65535
#: a pure ACK from the receiver once this many bytes are unacknowledged
ACK_EVERY = 1 << 20

_IPV4_TCP = struct.Struct(">BBHHHBBH4s4sHHIIHHHH")
_IPV6_TCP = struct.Struct(">IHBB16s16sHHIIHHHH")
_SYN_OPTIONS = struct.pack(">BBHBBBB", 2, 4, MSS, 1, 3, 3, WSCALE)  # MSS, NOP, WS
_MOD = 0xFFFF


def _fold(total: int) -> int:
    """The Internet checksum of a sum of 16-bit words, given modulo 0xFFFF.

    The ones'-complement sum of the words of a byte string equals its
    big-endian integer value modulo 0xFFFF (2**16 is 1 modulo 0xFFFF), so
    `int.from_bytes` does the adding in C.
    """
    s = total % _MOD
    return 0 if s == 0 and total else (~s) & 0xFFFF


def _words(data: bytes) -> int:
    n = int.from_bytes(data, "big")
    return n << 8 if len(data) & 1 else n


class Endpoint:
    """One end's address as packed bytes, and its IP version."""

    __slots__ = ("addr", "port", "v6")

    def __init__(self, host: str, port: int) -> None:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        self.v6 = ip.version == 6
        self.addr = ip.packed
        self.port = port


class TcpLeg:
    """The packets of one TCP connection between `a` (side 0) and `b` (side 1)."""

    def __init__(self, a: Endpoint, b: Endpoint, key: int = 0) -> None:
        self.ends = (a, b)
        self.v6 = a.v6 or b.v6
        if self.v6:  # one end IPv4, the other IPv6: show the IPv4 one as v4-mapped
            for end in (a, b):
                if not end.v6:
                    end.addr, end.v6 = b"\0" * 10 + b"\xff\xff" + end.addr, True
        seed = zlib.crc32(a.addr + b.addr + struct.pack(">HHI", a.port, b.port, key & 0xFFFFFFFF))
        #: next sequence number each side sends (its ISN until the SYN is out)
        self.seq = [seed, zlib.crc32(b"b", seed)]
        self.unacked = [0, 0]
        self.fin = [False, False]
        self.reset = False
        self.ident = [1, 1]
        self._pseudo = [self._pseudo_sum(0), self._pseudo_sum(1)]
        #: the IPv4 header's constant words (version, flags, TTL, protocol, addresses)
        self._ip = [
            (0x4500 + 0x4000 + (64 << 8 | 6) + int.from_bytes(a.addr + b.addr, "big")) % _MOD
            for a, b in ((a, b), (b, a))
        ]

    def _pseudo_sum(self, side: int) -> int:
        """The pseudo-header's addresses and protocol, as a word sum modulo 0xFFFF."""
        src, dst = self.ends[side].addr, self.ends[1 - side].addr
        return (int.from_bytes(src + dst, "big") + 6) % _MOD

    # -- building ---------------------------------------------------------------------
    def _packet(self, side: int, flags: int, payload: bytes = b"", options: bytes = b"") -> bytes:
        """One packet, headers packed once: the checksums are summed from the field values."""
        src, dst = self.ends[side], self.ends[1 - side]
        seq = self.seq[side]
        ack = self.seq[1 - side] if flags & ACK else 0
        hlen = 20 + len(options)
        tcp_len = hlen + len(payload)
        offset_flags = (hlen // 4) << 12 | flags
        total = (
            self._pseudo[side] + tcp_len + src.port + dst.port + (seq >> 16) + (seq & 0xFFFF)
            + (ack >> 16) + (ack & 0xFFFF) + offset_flags + WINDOW
        )  # fmt: skip
        if options:
            total += _words(options)
        if payload:
            total += _words(payload)
        csum = _fold(total)
        if self.v6:
            head = _IPV6_TCP.pack(
                0x60000000, tcp_len, 6, 64, src.addr, dst.addr,
                src.port, dst.port, seq, ack, offset_flags, WINDOW, csum, 0,
            )  # fmt: skip
        else:
            ident = self.ident[side]
            self.ident[side] = (ident + 1) & 0xFFFF
            length = 20 + tcp_len
            ip_sum = _fold(self._ip[side] + length + ident)
            head = _IPV4_TCP.pack(
                0x45, 0, length, ident, 0x4000, 64, 6, ip_sum, src.addr, dst.addr,
                src.port, dst.port, seq, ack, offset_flags, WINDOW, csum, 0,
            )  # fmt: skip
        return b"".join((head, options, payload)) if options or payload else head

    # -- what happened ------------------------------------------------------------------
    def handshake(self) -> list[bytes]:
        """SYN, SYN-ACK, ACK."""
        syn = self._packet(0, SYN, options=_SYN_OPTIONS)
        self.seq[0] = (self.seq[0] + 1) & 0xFFFFFFFF
        synack = self._packet(1, SYN | ACK, options=_SYN_OPTIONS)
        self.seq[1] = (self.seq[1] + 1) & 0xFFFFFFFF
        return [syn, synack, self._packet(0, ACK)]

    def data(self, side: int, payload: bytes) -> list[bytes]:
        """`payload` from `side`, in segments of at most MSS bytes."""
        if self.reset or self.fin[side] or not payload:
            return []
        out = []
        for at in range(0, len(payload), MSS):
            part = payload[at : at + MSS]
            out.append(self._packet(side, PSH | ACK, part))
            self.seq[side] = (self.seq[side] + len(part)) & 0xFFFFFFFF
        self.unacked[side] += len(payload)
        if self.unacked[side] >= ACK_EVERY and not self.fin[1 - side]:
            out.append(self.ack(1 - side))
        return out

    def ack(self, side: int) -> bytes:
        """A pure ACK from `side` of everything the other side sent."""
        self.unacked[1 - side] = 0
        return self._packet(side, ACK)

    def skip(self, side: int, n: int) -> None:
        """`n` bytes from `side` that are not in the capture (the tap dropped them)."""
        self.seq[side] = (self.seq[side] + n) & 0xFFFFFFFF

    def finish(self, side: int) -> list[bytes]:
        """`side` half-closed: its FIN, and the other side's ACK of it."""
        if self.reset or self.fin[side]:
            return []
        pkt = self._packet(side, FIN | ACK)
        self.seq[side] = (self.seq[side] + 1) & 0xFFFFFFFF
        self.fin[side] = True
        self.unacked[side] = 0
        return [pkt, self.ack(1 - side)]

    def abort(self, side: int) -> list[bytes]:
        """`side` reset the connection."""
        if self.reset or (self.fin[0] and self.fin[1]):
            return []
        self.reset = True
        return [self._packet(side, RST | ACK)]

    @property
    def closed(self) -> bool:
        return self.reset or (self.fin[0] and self.fin[1])
