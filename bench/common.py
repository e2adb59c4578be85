"""Shared pieces for benchmarks: free ports, starting and stopping peers."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {port}") from None
            time.sleep(0.05)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"bench needs {tool!r} (apt-get install it; see scripts/test)")
    return path


@contextlib.contextmanager
def process(args: list[str], **kw: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def protoproxy(
    listeners: list[tuple[str, int, int, str]], extra: str = ""
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `protoproxy run` with (name, listen_port, upstream_port, protocol) listeners."""
    lines = ["admin: {enabled: false}", "listeners:"]
    for name, port, _up, proto in listeners:
        lines.append(
            f"  - {{name: {name}, listen: '127.0.0.1:{port}', protocol: {proto}, upstream: {name}}}"
        )
    lines.append("upstreams:")
    for name, _port, up, _proto in listeners:
        lines.append(f"  - {{name: {name}, endpoints: ['127.0.0.1:{up}']}}")
    lines.append(extra)
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "bench.yaml"
        cfg.write_text("\n".join(lines) + "\n")
        with process(
            [sys.executable, "-m", "protoproxy", "--log-level", "error", "run", str(cfg)]
        ) as p:
            for _, port, _, _ in listeners:
                wait_port(port)
            yield p


@contextlib.contextmanager
def haproxy(
    listeners: list[tuple[str, int, int, str]], threads: int = 1
) -> Iterator[subprocess.Popen[bytes]]:
    """HAProxy with one frontend/backend per (name, port, upstream_port, mode) entry."""
    cfg = [
        "global",
        f"  nbthread {threads}",
        "  maxconn 4000",
        "defaults",
        "  timeout connect 5s",
        "  timeout client 60s",
        "  timeout server 60s",
    ]
    for name, port, up, mode in listeners:
        cfg += [
            f"frontend f_{name}",
            f"  mode {mode}",
            f"  bind 127.0.0.1:{port}"
            + (" proto h2" if mode == "http" and name.startswith("h2") else ""),
            f"  default_backend b_{name}",
            f"backend b_{name}",
            f"  mode {mode}",
            f"  server s1 127.0.0.1:{up}"
            + (" proto h2" if mode == "http" and name.startswith("h2") else ""),
        ]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "haproxy.cfg"
        path.write_text("\n".join(cfg) + "\n")
        with process([need("haproxy"), "-f", str(path), "-db"]) as p:
            for _, port, _, _ in listeners:
                wait_port(port)
            yield p


@contextlib.contextmanager
def nginx_small(
    port: int, body: str = "ok", h2c: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """nginx answering every request with a tiny body: the request/response upstream
    (over HTTP/1.1, or with `h2c` over cleartext HTTP/2, 256 streams per connection)."""
    h2 = "http2_max_concurrent_streams 256; client_body_buffer_size 64k;" if h2c else ""
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "nginx.conf"
        conf.write_text(
            textwrap.dedent(
                f"""
                daemon off;
                worker_processes 1;
                pid {d}/nginx.pid;
                error_log {d}/error.log;
                events {{ worker_connections 4096; }}
                http {{
                  access_log off;
                  keepalive_requests 100000000;
                  {h2}
                  client_body_temp_path {d};
                  proxy_temp_path {d};
                  fastcgi_temp_path {d};
                  uwsgi_temp_path {d};
                  scgi_temp_path {d};
                  server {{
                    listen 127.0.0.1:{port}{" http2" if h2c else ""} reuseport;
                    location / {{ return 200 "{body}"; }}
                  }}
                }}
                """
            )
        )
        with process([need("nginx"), "-c", str(conf), "-p", d]) as p:
            wait_port(port)
            yield p


def rss(pid: int, key: str = "VmRSS") -> int:
    """Bytes of `key` (VmRSS now, VmHWM the peak so far) in /proc/PID/status; 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def fuzz_summary(reports: dict[str, dict], note: str = "") -> bool:
    """Print `protoproxy fuzz` reports (name -> report.json) side by side, the
    proxy/direct ratio of cases per second and every failure; True if any failed."""
    rows = [("run", "cases", "seconds", "cases/s", "responses/s", "labels", "failures")]
    for name, r in reports.items():
        rows.append(
            (
                name,
                str(r["cases"]),
                f"{r['elapsed_s']:.1f}",
                f"{r['cases_per_s']:.1f}",
                f"{r.get('responses_per_s', 0.0):.1f}",
                str(len(r["coverage"])),
                str(len(r["failures"])),
            )
        )
    print(table(rows))
    direct = reports["direct"]["cases_per_s"]
    ratio = reports["proxy"]["cases_per_s"] / direct if direct else 0.0
    print(f"proxy/direct cases/s: {ratio:.2f}{f' ({note})' if note else ''}")
    failed = False
    for name, r in reports.items():
        for f in r["failures"]:
            failed = True
            print(f"{name}: FAILED {f.get('oracle')} on {f.get('label')}: {f.get('detail')}")
    return failed
