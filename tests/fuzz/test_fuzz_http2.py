"""`protoproxy fuzz http2` end to end: a planted bug found, shrunk and replayed; no
false alarm against nghttpd.

The planted server (tests/fuzz/planted_http2.py) dies on a PRIORITY frame for an
idle stream followed by a padded HEADERS opening that stream, once another
stream was opened. Hypothesis has to reach that through the proxy with the
default budget and shrink it to exactly three frames.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protoproxy.fuzz import cli
from protoproxy.fuzz.driver import Case, Options, OracleFailure, Target
from protoproxy.fuzz.http2 import Http2Driver
from protoproxy.fuzz.http2_cases import build_case
from protoproxy_codecs.http2 import frames as F
from tests.fuzz.planted_http2 import PlantedHttp2Server, planted_child
from tests.peers import connect_when_listening, free_port
from tests.tools import require_tool

REQUEST = [[":method", "POST"], [":path", "/p/{}"], [":scheme", "http"], [":authority", "h"]]


def _request(sid: int) -> list[list[str]]:
    return [[n, v.format(sid)] for n, v in REQUEST]


#: the minimal case: preface, SETTINGS, HEADERS(1), PRIORITY(3), padded HEADERS(3),
#: then the driver's closing END_STREAMs
MINIMAL = [
    {"type": "PREFACE"},
    {"type": "SETTINGS", "stream": 0, "flags": [], "length": 6, "settings": [["ENABLE_PUSH", 0]]},
    {
        "type": "HEADERS",
        "stream": 1,
        "flags": ["END_HEADERS"],
        "length": 11,
        "headers": _request(1),
    },
    {
        "type": "PRIORITY",
        "stream": 3,
        "flags": [],
        "length": 5,
        "priority": {"depends_on": 0, "weight": 1, "exclusive": False},
    },
    {
        "type": "HEADERS",
        "stream": 3,
        "flags": ["END_HEADERS", "PADDED"],
        "length": 10,
        "pad": 0,
        "headers": _request(3),
    },
    {"type": "DATA", "stream": 1, "flags": ["END_STREAM"], "length": 0, "closing": True},
    {"type": "DATA", "stream": 3, "flags": ["END_STREAM"], "length": 0, "closing": True},
]


def test_planted_bug_is_found_shrunk_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with planted_child() as target:
        argv = ["fuzz", "http2", "--target", str(target), "--out", str(out), "--seed", "1"]
        assert cli.main([*argv, "--quiet"]) == 1
    files = sorted((out / "failures").glob("*.json"))
    assert [f.name for f in files] == ["0001.json"]
    failure = json.loads(files[0].read_text())
    assert failure["oracle"] == "closed_with_reason"
    assert failure["detail"] == (
        "the server closed the connection without a GOAWAY (streams 1, 3 unanswered)"
    )
    assert failure["case"]["label"] == "HEADERS+PRIORITY"
    assert failure["case"]["decoded"] == MINIMAL
    assert failure["direct"] is False
    capsys.readouterr()

    with planted_child() as fresh:
        assert cli.main(["fuzz", "--replay", str(files[0]), "--target", str(fresh)]) == 1
    assert "still fails: closed_with_reason" in capsys.readouterr().err
    with planted_child(fixed=True) as fixed:
        assert cli.main(["fuzz", "--replay", str(files[0]), "--target", str(fixed)]) == 0
    assert "no longer fails" in capsys.readouterr().err


def test_a_dead_server_fails_the_case_then_the_probe() -> None:
    """The oracles one by one, against a server that stays dead (no revival)."""
    import hpack

    enc = hpack.Encoder()

    def block(sid: int) -> bytes:
        return enc.encode([tuple(h) for h in _request(sid)], huffman=False)

    data = (
        F.PREFACE
        + F.build_settings([(int(F.SettingId.ENABLE_PUSH), 0)])
        + F.frame(F.HEADERS, F.FLAG_END_HEADERS, 1, block(1))
        + F.frame(F.PRIORITY, 0, 3, b"\0\0\0\0\0")
        + F.frame(F.HEADERS, F.FLAG_END_HEADERS | F.FLAG_PADDED, 3, b"\0" + block(3))
    )
    case = build_case(data, [data])
    assert case.decoded == MINIMAL
    driver = Http2Driver(Options(deadline_s=2))
    with PlantedHttp2Server(fixed=True) as fixed:
        obs = driver.execute(case, fixed.target)
        assert obs.responses == 2  # both streams answered
        driver.probe(fixed.target)
    with PlantedHttp2Server(revive_s=None) as server:
        with pytest.raises(OracleFailure) as failed:
            driver.execute(case, server.target)
        assert failed.value.oracle == "closed_with_reason"
        assert server.deaths == 1
        with pytest.raises(OracleFailure) as probe:
            driver.probe(server.target)
        assert probe.value.oracle == "alive"


@pytest.fixture()
def nghttpd(tmp_path: Path) -> Iterator[Target]:
    """nghttpd over cleartext HTTP/2 (prior knowledge), an empty docroot: every
    request is a 404, answered in full."""
    exe = require_tool("nghttpd")
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [exe, "--no-tls", "-a", "127.0.0.1", "-d", str(tmp_path), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            connect_when_listening(port, proc, what="nghttpd").close()
        except AssertionError:
            proc.kill()
            proc.wait(10)
            continue
        try:
            yield Target("127.0.0.1", port)
        finally:
            proc.terminate()
            proc.wait(10)
        return
    raise AssertionError("nghttpd could not bind a free port")


def test_no_false_alarm_against_nghttpd(tmp_path: Path, nghttpd: Target) -> None:
    out = tmp_path / "out"
    argv = ["fuzz", "http2", "--target", str(nghttpd), "--out", str(out), "--seed", "1"]
    assert cli.main([*argv, "--max-examples", "100", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["cases"] == 100
    assert not list(out.glob("failures/*.json"))
    # nghttpd never refused a conversation with a GOAWAY error either
    assert not [label for label in report["coverage"] if "GOAWAY" in label]


class _Scripted:
    """A one-connection server that answers anything with fixed bytes: the
    oracles' negative cases, which no real server gives on demand."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.sock.getsockname()[1])

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(self.answer)
            conn.recv(65536)  # hold the connection until the client goes

    def close(self) -> None:
        self.sock.close()


def _requests() -> Case:
    """Two requests, streams 1 and 3: the driver reads until both are answered,
    so a frame the server sends between the two answers is always judged."""
    import hpack

    enc = hpack.Encoder()
    data = F.PREFACE + F.build_settings([(int(F.SettingId.ENABLE_PUSH), 0)])
    for sid in (1, 3):
        block = enc.encode([tuple(h) for h in _request(sid)], huffman=False)
        data += F.frame(F.HEADERS, F.FLAG_END_HEADERS | F.FLAG_END_STREAM, sid, block)
    return build_case(data, [data])


def _response(status: str, sid: int = 1) -> bytes:
    import hpack

    block = hpack.Encoder().encode([(":status", status)], huffman=False)
    return F.build_header_block(sid, block, end_stream=True)


_OK = _response("200", 1) + _response("200", 3)


@pytest.mark.parametrize(
    ("answer", "allow", "oracle"),
    [
        (F.build_settings() + F.build_rst_stream(7, 0) + _OK, (), "correlation"),
        (
            F.build_settings()
            + _response("200", 1)
            + F.build_data(1, b"late")
            + _response("200", 3),
            (),
            "correlation",
        ),
        (F.build_settings() + _response("503", 1) + _response("200", 3), (), "not_a_server_error"),
        (F.build_settings() + _response("503", 1) + _response("200", 3), ("503",), None),
        (
            F.build_settings() + b"\0\0\4\x08\0\0\0\0\0\0\0\0\0" + _OK,
            (),
            "decodes",
        ),  # WINDOW_UPDATE of 0
    ],
    ids=["never-opened", "after-end-stream", "5xx", "5xx-allowed", "bad-frame"],
)
def test_oracles_on_scripted_answers(
    answer: bytes, allow: tuple[str, ...], oracle: str | None
) -> None:
    server = _Scripted(answer)
    driver = Http2Driver(Options(deadline_s=2, allow_status=frozenset(allow)))
    try:
        if oracle is None:
            assert driver.execute(_requests(), server.target).responses == 2
        else:
            with pytest.raises(OracleFailure) as failed:
                driver.execute(_requests(), server.target)
            assert failed.value.oracle == oracle
    finally:
        server.close()
