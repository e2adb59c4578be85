"""fixtures/wiremock/cases.json: load the cases, send one, judge the answer.

The format is in fixtures/wiremock/README.md. Requests go out on a raw
socket, parsed with h11: no client library adds ``Accept-Encoding`` (real
WireMock would gzip) or hides how a connection broke, and one `send` serves
the fake, the fake behind the proxy and real WireMock alike.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11

ROOT = Path(__file__).resolve().parents[3] / "fixtures" / "wiremock"
#: Seconds a case's exchange may take: a hang bound, not a speed check.
TIMEOUT_S = 30.0
#: Bytes of answer read at most: the fixtures' bodies are small.
MAX_ANSWER = 1 << 20


@dataclass(frozen=True)
class Case:
    index: int
    mapping: str
    request: dict[str, Any]
    expected: dict[str, Any]
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.index:02d}-{self.request['method']}-{self.request['url']}"


@dataclass
class Answer:
    """What came back: an HTTP answer, or `broken` saying how the connection broke."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    elapsed_s: float = 0.0
    broken: str | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def load_cases(root: Path = ROOT) -> list[Case]:
    data = json.loads((root / "cases.json").read_text())
    return [
        Case(i, c["mapping"], c["request"], c["expected"], c.get("note", ""))
        for i, c in enumerate(data)
    ]


def send(address: str, request: dict[str, Any]) -> Answer:
    """One request on a fresh keep-alive connection, closed after the answer."""
    host, _, port = address.rpartition(":")
    body = str(request.get("body") or "").encode()
    headers = [("Host", address)]  # keep-alive, as most clients: it decides fault framing
    headers += [(k, str(v)) for k, v in (request.get("headers") or {}).items()]
    if body or request["method"] in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", str(len(body))))
    conn = h11.Connection(h11.CLIENT)
    wire = conn.send(h11.Request(method=request["method"], target=request["url"], headers=headers))
    wire += conn.send(h11.Data(data=body)) if body else b""
    wire += conn.send(h11.EndOfMessage())
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(wire)
        out = Answer()
        raw = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = sock.recv(65536)
                    raw += data
                    if len(raw) > MAX_ANSWER:
                        raise AssertionError(f"answer over {MAX_ANSWER} bytes")
                    conn.receive_data(data)
                    if not data and not out.status:
                        out.broken = "closed with no answer" if not raw else "not HTTP"
                        break
                elif isinstance(event, h11.Response):
                    out.status = event.status_code
                    out.headers = [(k.decode(), v.decode()) for k, v in event.headers.raw_items()]
                elif isinstance(event, h11.Data):
                    out.body += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        except ConnectionResetError:
            out.broken = "reset"
        except h11.RemoteProtocolError as e:
            out.broken = "malformed chunk" if out.status else f"not HTTP ({e})"
    out.elapsed_s = time.monotonic() - started
    return out


def problems(case: Case, got: Answer) -> list[str]:
    """How `got` differs from the case's expected answer (empty: it is the one)."""
    exp = case.expected
    if "fault" in exp:
        return [] if got.broken else [f"expected the fault {exp['fault']}, got {got.status}"]
    if got.broken:
        return [f"the connection broke ({got.broken}); expected status {exp['status']}"]
    out = []
    if got.status != exp["status"]:
        out.append(f"status {got.status}, expected {exp['status']}")
    for name, value in (exp.get("headers") or {}).items():
        if got.header(name) != value:
            out.append(f"header {name}: {got.header(name)!r}, expected {value!r}")
    text = got.body.decode("utf-8", "replace")
    if "body" in exp and text != exp["body"]:
        out.append(f"body {text!r}, expected {exp['body']!r}")
    if "bodyJson" in exp:
        try:
            if json.loads(text) != exp["bodyJson"]:
                out.append(f"JSON body {text!r}, expected {exp['bodyJson']!r}")
        except json.JSONDecodeError:
            out.append(f"body {text!r} is not JSON")
    if "bodyBase64" in exp and got.body != base64.b64decode(exp["bodyBase64"]):
        out.append(f"body {got.body!r}, expected base64 {exp['bodyBase64']}")
    if "bodyRegex" in exp and re.search(exp["bodyRegex"], text) is None:
        out.append(f"body {text[:300]!r} does not match {exp['bodyRegex']!r}")
    if "minDelayMs" in exp and got.elapsed_s * 1000 < exp["minDelayMs"]:
        out.append(f"answered after {got.elapsed_s * 1000:.0f} ms, before {exp['minDelayMs']} ms")
    return out


def prepare(address: str, cases: list[Case], case: Case) -> None:
    """Bring the server's scenarios to where `case` expects them: reset, then the
    earlier cases of the same mapping file replayed (the list's order)."""
    reset = {"method": "POST", "url": "/__admin/scenarios/reset", "headers": {}, "body": ""}
    answer = send(address, reset)
    assert answer.status == 200, answer
    for earlier in cases[: case.index]:
        if earlier.mapping == case.mapping and "fault" not in earlier.expected:
            send(address, earlier.request)
