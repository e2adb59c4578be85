"""Backpressure: a fast writer and a slow reader must not grow the proxy's memory.

The proxy runs as its own process (`protoproxy run`) so that its RSS can be
read from /proc. The client writes 1 GiB; the upstream first does not read
at all, then reads slowly. RSS may not rise more than 64 MiB above idle.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

from tests.peers import ChildStderr, listener_port, protoproxy_run

MiB = 1024 * 1024
TOTAL = 1024 * MiB


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slow_upstream_keeps_proxy_memory_bounded(tmp_path):
    upstream = socket.create_server(("127.0.0.1", 0))
    up_port = upstream.getsockname()[1]
    cfg = tmp_path / "bp.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            admin: {{enabled: false}}
            listeners:
              - {{name: l, listen: "127.0.0.1:0", protocol: tcp, upstream: u}}
            upstreams:
              - {{name: u, endpoints: ["127.0.0.1:{up_port}"]}}
            limits: {{write_buffer_high: 1MiB, write_buffer_low: 256KiB}}
            """
        )
    )
    # the port comes from the proxy's log once bound: no number picked in advance
    proc = protoproxy_run(cfg, stderr=subprocess.PIPE, text=True)
    stderr = ChildStderr(proc)
    try:
        port = listener_port(stderr, "l")
        # one connection through first, so idle RSS includes what the first costs
        probe = socket.create_connection(("127.0.0.1", port))
        probe_up, _ = upstream.accept()
        probe.close()
        probe_up.settimeout(30)
        assert probe_up.recv(1) == b""  # the proxy has closed it on its side too
        probe_up.close()
        idle = rss(proc.pid)

        client = socket.create_connection(("127.0.0.1", port))
        server, _ = upstream.accept()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sent = [0]
        chunk = b"\xab" * MiB

        def write() -> None:
            while sent[0] < TOTAL:
                client.sendall(chunk)
                sent[0] += len(chunk)
            client.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        peak = idle
        # Phase 1: the upstream reads nothing for 2 s; the proxy must stop reading.
        stop = time.monotonic() + 2
        while time.monotonic() < stop:
            peak = max(peak, rss(proc.pid))
            time.sleep(0.05)
        stalled_at = sent[0]
        assert stalled_at < 64 * MiB, f"client wrote {stalled_at} bytes into a non-reading path"
        # Phase 2: read slowly (small reads, short sleeps) until all 1 GiB arrived.
        received = 0
        server.settimeout(30)
        last_sample = 0.0
        while True:
            data = server.recv(256 * 1024)
            if not data:
                break
            received += len(data)
            now = time.monotonic()
            if now - last_sample > 0.05:
                peak = max(peak, rss(proc.pid))
                last_sample = now
                time.sleep(0.001)
        writer.join(10)
        assert received == TOTAL
        grew = peak - idle
        print(
            f"idle RSS {idle / MiB:.1f} MiB, peak {peak / MiB:.1f} MiB, grew {grew / MiB:.1f} MiB"
        )
        assert grew < 64 * MiB, f"proxy RSS grew {grew / MiB:.1f} MiB under backpressure"
        client.close()
        server.close()
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.close()
