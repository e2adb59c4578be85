"""A recording TCP relay, and the scapy packets that replay what it recorded.

Real clients talk through the relay to real testbed services; every read is
kept as (timestamp ns, direction, bytes) and becomes one TCP segment (with
SYN, SYN-ACK, ACKs implied, FIN) in a synthesised pcap.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from scapy.all import IP, TCP, Ether, Packet, wrpcap  # type: ignore[attr-defined]

Chunk = tuple[int, int, bytes]  # ns, 0 = client->server / 1 = back, bytes


@dataclass
class Relay:
    target: tuple[str, int]
    conns: list[list[Chunk]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            log: list[Chunk] = []
            with self.lock:
                self.conns.append(log)
            for d, a, b in ((0, c, u), (1, u, c)):
                t = threading.Thread(target=self._pump, args=(d, a, b, log), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, d: int, a: socket.socket, b: socket.socket, log: list[Chunk]) -> None:
        try:
            while data := a.recv(65536):
                with self.lock:
                    log.append((time.time_ns(), d, data))
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        for t in self.threads:
            t.join(10)


def packets(
    log: list[Chunk],
    cport: int = 40000,
    sport: int = 9092,
    mss: int = 1400,
    isn: tuple[int, int] = (1000, 5000),
) -> list[Packet]:
    """The conversation as Ethernet/IPv4/TCP packets with real sequence numbers."""
    c, s = "10.0.0.1", "10.0.0.2"
    seq = [isn[0], isn[1]]
    t0 = log[0][0] if log else time.time_ns()
    out: list[Packet] = []

    def pkt(d: int, flags: str, payload: bytes, ts: int) -> None:
        src, dst, sp, dp = (c, s, cport, sport) if d == 0 else (s, c, sport, cport)
        p = (
            Ether()
            / IP(src=src, dst=dst)
            / TCP(sport=sp, dport=dp, flags=flags, seq=seq[d], ack=seq[1 - d])
        )
        if payload:
            p = p / payload
        p.time = ts / 1e9
        out.append(p)
        seq[d] = (seq[d] + len(payload) + (1 if "S" in flags or "F" in flags else 0)) % (1 << 32)

    pkt(0, "S", b"", t0 - 2000)
    pkt(1, "SA", b"", t0 - 1000)
    for ts, d, data in log:
        for i in range(0, len(data), mss):
            pkt(d, "PA", data[i : i + mss], ts)
    end = log[-1][0] + 1000 if log else t0
    pkt(0, "FA", b"", end)
    pkt(1, "FA", b"", end + 1000)
    return out


def write(path: str, pkts: list[Packet]) -> None:
    wrpcap(path, pkts)
