"""Reading taps back with tshark: what it flags, each TCP stream's bytes, dissected fields.

tshark takes a second or two to start on a loaded machine, so each capture
is read once, into one field dump that every question is answered from.
"""

from __future__ import annotations

import functools
import subprocess
from collections import defaultdict
from pathlib import Path

from tests.tools import require_tshark

FIELDS = ("frame.number", "tcp.srcport", "tcp.dstport", "tcp.payload", "http2.type",
          "http2.streamid", "http2.header.name", "http2.header.value", "kafka.api_key",
          "kafka.correlation_id", "kafka.client_id", "kafka.api_version",
          # what a clean capture must not show: TCP analysis flags (lost or out-of-order
          # segments, retransmissions, window problems, dup ACKs), dissector errors,
          # bad checksums (status 0)
          "tcp.analysis.flags", "_ws.malformed", "_ws.expert.severity",
          "tcp.checksum.status", "ip.checksum.status")  # fmt: skip
#: _ws.expert.severity of an error (tshark's PI_ERROR)
ERROR = 0x00800000


def _run(path: Path, decode_as: tuple[str, ...], *args: str) -> str:
    tshark = require_tshark()
    cmd = [tshark, "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    for rule in decode_as:
        cmd += ["-d", rule]
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout


def problems(path: Path, decode_as: tuple[str, ...]) -> list[dict[str, str]]:
    """The frames tshark flags (TCP analysis, malformed, errors, bad checksums)."""
    bad = []
    for row in dump(path, decode_as):
        severities = [int(v) for v in row["_ws.expert.severity"].split("|") if v]
        if (
            row["tcp.analysis.flags"]
            or row["_ws.malformed"]
            or any(v >= ERROR for v in severities)
            or "0" in row["tcp.checksum.status"].split("|")
            or "0" in row["ip.checksum.status"].split("|")
        ):
            bad.append(row)
    return bad


@functools.cache
def dump(path: Path, decode_as: tuple[str, ...]) -> list[dict[str, str]]:
    """Every frame's FIELDS (repeated fields joined with ``|``)."""
    args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for name in FIELDS:
        args += ["-e", name]
    rows = []
    for line in _run(path, decode_as, *args).splitlines():
        rows.append(dict(zip(FIELDS, [*line.split("\t"), *[""] * len(FIELDS)], strict=False)))
    return rows


def streams(path: Path, decode_as: tuple[str, ...] = ()) -> dict[tuple[int, int], bytes]:
    """(source port, destination port) -> the payload bytes that endpoint sent, in order."""
    got: dict[tuple[int, int], bytearray] = defaultdict(bytearray)
    for row in dump(path, decode_as):
        if row["tcp.payload"]:
            key = (int(row["tcp.srcport"]), int(row["tcp.dstport"]))
            got[key] += bytes.fromhex(row["tcp.payload"].replace(":", "").replace("|", ""))
    return {k: bytes(v) for k, v in got.items()}


def headers(path: Path, decode_as: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each HTTP/2 HEADERS frame's (stream id, [(name, value)...]), as tshark decoded it."""
    out = []
    for row in dump(path, decode_as):
        types = row["http2.type"].split("|")
        if "1" not in types:
            continue
        names, values = row["http2.header.name"].split("|"), row["http2.header.value"].split("|")
        out.append((row["http2.streamid"], list(zip(names, values, strict=False))))
    return out
