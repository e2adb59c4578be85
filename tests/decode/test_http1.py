"""HTTP/1 captures from urllib: method, path and status against tshark."""

from __future__ import annotations

import subprocess
from pathlib import Path

from protoproxy.decode.decoder import decode, rows
from tests.tools import require_tshark

from .relay import Chunk, packets, write


def test_http1_agrees_with_tshark(http_log: list[Chunk], tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    write(str(path), packets(http_log, sport=8080))
    ours = [(r["operation"], r["status"]) for r in rows(decode(path))]
    assert ours == [("GET /nothing-here", "404")]
    out = subprocess.run(
        [require_tshark(), "-r", str(path), "-d", "tcp.port==8080,http", "-T", "fields",
         "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = [line.split("\t") for line in out.splitlines() if line.strip("\t")]
    method, uri = next((f[0], f[1]) for f in fields if f[0])
    code = next(f[2] for f in fields if len(f) > 2 and f[2])
    assert ours == [(f"{method} {uri}", code)]
