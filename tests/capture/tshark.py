"""Reading taps back with tshark: problems it reports, and each TCP stream's bytes."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

from tests.tools import require_tshark

#: what a clean capture must not show: dissector errors and TCP analysis flags
#: (lost or out-of-order segments, retransmissions, window problems, dup ACKs)
PROBLEMS = "_ws.malformed || tcp.analysis.flags || _ws.expert.severity >= error"


def _run(path: Path, decode_as: list[str], *args: str) -> str:
    tshark = require_tshark()
    cmd = [tshark, "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    for rule in decode_as:
        cmd += ["-d", rule]
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout


def problems(path: Path, decode_as: list[str]) -> list[str]:
    """Frames tshark flags (malformed, TCP analysis, bad checksums), as its summary lines."""
    return _run(path, decode_as, "-Y", f"{PROBLEMS} || tcp.checksum.status == 0 || ip.checksum.status == 0").splitlines()


def streams(path: Path) -> dict[tuple[int, int], bytes]:
    """(source port, destination port) -> the payload bytes that endpoint sent, in order."""
    out = _run(path, [], "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.payload")
    got: dict[tuple[int, int], bytearray] = defaultdict(bytearray)
    for line in out.splitlines():
        sport, dport, payload = [*line.split("\t"), "", ""][:3]
        if payload:
            got[(int(sport), int(dport))] += bytes.fromhex(payload.replace(":", ""))
    return {k: bytes(v) for k, v in got.items()}


def fields(path: Path, decode_as: list[str], display: str, *names: str) -> list[list[str]]:
    args = ["-Y", display, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for n in names:
        args += ["-e", n]
    return [line.split("\t") for line in _run(path, decode_as, *args).splitlines()]


def frame_count(path: Path) -> int:
    return len(_run(path, [], "-T", "fields", "-e", "frame.number").splitlines())
