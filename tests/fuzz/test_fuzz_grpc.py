"""`protoproxy fuzz grpc` end to end: a planted bug is found, shrunk and replayed through
the real proxy; the testbed's fake gRPC service raises no false alarm."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from google.protobuf import any_pb2, descriptor_pb2

from protoproxy.fuzz import cli
from protoproxy.fuzz.driver import Options, OracleFailure
from protoproxy.fuzz.grpc import Answer, GrpcDriver, as_json
from protoproxy.record.schema import compile_protos
from testbed.threaded import TestbedThread

from .planted_grpc import PROTO, PlantedServer

ROOT = Path(__file__).resolve().parents[2]
TESTBED_PROTO = ROOT / "fixtures" / "protos" / "testbed.proto"
FUZZ_PROTO = ROOT / "fixtures" / "fuzz" / "testbed" / "testbed_fuzz.proto"


def fuzz(target: object, out: Path, *extra: str, proto: Path = PROTO) -> int:
    argv = ["fuzz", "grpc", "--target", str(target), "--proto", str(proto)]
    return cli.main([*argv, "--out", str(out), "--seed", "1", "--quiet", *extra])


def test_the_planted_bug_is_found_shrunk_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with PlantedServer() as srv:
        assert fuzz(srv.target, tmp_path) == 1  # the default budget
    failures = sorted((tmp_path / "failures").iterdir())
    assert [f.name for f in failures] == ["0001.json"]
    failure = json.loads(failures[0].read_text())
    assert failure["oracle"] == "not_a_server_error"
    assert failure["detail"] == "planted.v1.Notes/Save -> INTERNAL: note too long to index"
    case = failure["case"]
    assert case["label"] == "planted.v1.Notes/Save"
    # exactly the smallest failing note: 301 of the plainest character, one empty tag
    assert case["decoded"] == [{"text": "0" * 301, "tags": [""]}]
    assert case["extra"] == {"compression": "identity"}
    assert case["wire"] == [(b"\x0a\xad\x02" + b"0" * 301 + b"\x12\x00").hex()]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "planted.v1.Notes/Save" in report["coverage"]

    replay = ["fuzz", "--replay", str(failures[0])]
    capsys.readouterr()
    with PlantedServer() as srv:
        assert cli.main([*replay, "--target", str(srv.target)]) == 1
    assert "still fails: not_a_server_error: planted.v1.Notes/Save" in capsys.readouterr().err
    with PlantedServer(fixed=True) as srv:
        assert cli.main([*replay, "--target", str(srv.target)]) == 0
        assert srv.calls == 1


def test_a_server_that_reports_not_serving_fails_health(tmp_path: Path) -> None:
    with PlantedServer(fixed=True, serving=False) as srv:
        assert fuzz(srv.target, tmp_path, "--max-examples", "5") == 1
    (failure,) = (tmp_path / "failures").iterdir()
    data = json.loads(failure.read_text())
    assert data["oracle"] == "health"
    assert data["detail"] == "/grpc.health.v1.Health/Check -> NOT_SERVING"


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with PlantedServer() as srv:
        argv = ["fuzz", "grpc", "--target", str(srv.target), "--out", str(tmp_path)]
        assert cli.main(argv) == 2
        assert "--proto FILE is required" in capsys.readouterr().err
        wrong = [*argv, "--proto", str(PROTO), "--method", "planted.v1.Notes/Nope"]
        assert cli.main(wrong) == 2
        assert "--method planted.v1.Notes/Nope: not in" in capsys.readouterr().err


def test_the_fuzz_view_of_the_testbed_matches_its_proto() -> None:
    """testbed_fuzz.proto is testbed.proto less Request.behaviour, field for field."""

    def messages(proto: Path) -> tuple[dict[str, Any], list[Any], list[Any]]:
        fds = descriptor_pb2.FileDescriptorSet.FromString(compile_protos([proto], []))
        (file,) = fds.file
        return {m.name: m for m in file.message_type}, list(file.service), list(file.enum_type)

    real, real_services, real_enums = messages(TESTBED_PROTO)
    fuzz_view, fuzz_services, fuzz_enums = messages(FUZZ_PROTO)
    assert fuzz_services == real_services and fuzz_enums == real_enums
    request = real.pop("Request")
    del request.field[[f.name for f in request.field].index("behaviour")]
    real.pop("Behaviour")
    got = fuzz_view.pop("Request")
    assert list(got.field) == list(request.field)
    assert fuzz_view == real


def test_no_false_alarm_on_the_testbed_fake(tmp_path: Path) -> None:
    scenario = {"kafka": {"enabled": False}, "http": {"enabled": False}}
    with TestbedThread(scenario) as tb:
        fake = tb.call(lambda testbed: testbed.services["grpc"].address)
        rc = fuzz(fake, tmp_path, "--max-examples", "100", proto=FUZZ_PROTO)
    assert rc == 0, list((tmp_path / "failures").glob("*.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    plain = {label for label in report["coverage"] if label.split()[0] != "streams"}
    assert len(plain) == 4  # every method of the service was called
    # and stream sequences (grpc_machine.py) ran, raising no false alarm either
    assert report["stateful_cases"] > 0 and len(report["coverage"]) > 4


def _driver(**options: Any) -> GrpcDriver:
    return GrpcDriver(Options(proto=(str(PROTO),), deadline_s=2.0, **options))


def _answer(code: grpc.StatusCode, details: str = "", n: int = 1, **kw: Any) -> Answer:
    fields = {"responses": [b""] * n, "trailers": (), "took_ns": 10**6, **kw}
    return Answer(code=code, details=details, **fields)


@pytest.mark.parametrize(
    ("method", "answer", "oracle"),
    [
        ("Save", _answer(grpc.StatusCode.OK), None),
        ("Save", _answer(grpc.StatusCode.INVALID_ARGUMENT, "no", n=0), None),
        ("Save", _answer(grpc.StatusCode.DATA_LOSS, "lost", n=0), "not_a_server_error"),
        ("Save", _answer(grpc.StatusCode.DEADLINE_EXCEEDED, n=0, took_ns=19 * 10**8), "deadline"),
        ("Save", _answer(grpc.StatusCode.DEADLINE_EXCEEDED, "upstream slow", n=0), None),
        ("Save", _answer(grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)", n=0),
         "closed_with_reason"),
        ("Save", _answer(grpc.StatusCode.UNAVAILABLE, "draining, try later", n=0), None),
        ("Save", _answer(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", n=0),
         "alive"),
        ("Save", _answer(grpc.StatusCode.OK, n=0), "correlation"),
        ("Import", _answer(grpc.StatusCode.OK, n=2), "correlation"),
        ("Watch", _answer(grpc.StatusCode.OK, n=0), None),
        ("Save", _answer(grpc.StatusCode.OK, trailers=(("x-Bad", "v"),)), "correlation"),
        ("Save", _answer(grpc.StatusCode.OK, trailers=(("x-t", "caf\u00e9"),)), "correlation"),
        ("Save", _answer(grpc.StatusCode.OK, trailers=(("x-t-bin", b"\xff"),)), None),
        ("Watch", _answer(grpc.StatusCode.OK, responses=[b"\x08\x01", b"\x0a"]), "decodes"),
    ],
)  # fmt: skip
def test_the_oracles_judge_answers(method: str, answer: Answer, oracle: str | None) -> None:
    driver = _driver()
    m = driver.by_label[f"planted.v1.Notes/{method}"]
    if oracle is None:
        driver.judge(m, answer)
    else:
        with pytest.raises(OracleFailure) as info:
            driver.judge(m, answer)
        assert info.value.oracle == oracle
    driver.close()


def test_allow_status_accepts_a_server_error() -> None:
    driver = _driver(allow_status=frozenset({"INTERNAL"}))
    driver.judge(driver.by_label["planted.v1.Notes/Save"], _answer(grpc.StatusCode.INTERNAL, n=0))
    driver.close()


def test_json_that_protobuf_refuses_falls_back_to_text() -> None:
    value = any_pb2.Any(type_url="example.com/no.such.Type", value=b"\x08\x01")
    assert as_json(value) == {
        "_text": 'type_url: "example.com/no.such.Type"\nvalue: "\\010\\001"\n'
    }


class _ClosingServer:
    """An HTTP/2 server that accepts the connection, then closes it mid-call."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        with conn:
            conn.sendall(h2c.data_to_send())
            while data := conn.recv(65536):
                events = h2c.receive_data(data)
                if any(isinstance(e, h2.events.RequestReceived) for e in events):
                    return  # mid-call: headers in, no status out
                conn.sendall(h2c.data_to_send())

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"


def test_a_connection_closed_mid_call_is_caught(tmp_path: Path) -> None:
    server = _ClosingServer()
    try:
        rc = fuzz(
            server.target, tmp_path, "--max-examples", "3", "--method", "planted.v1.Notes/Save"
        )
    finally:
        server.sock.close()
    assert rc == 1
    (failure,) = (tmp_path / "failures").iterdir()
    data = json.loads(failure.read_text())
    assert data["oracle"] == "closed_with_reason"
    assert data["case"]["decoded"] == [{}]  # any call: shrunk to the empty note


def test_stream_steps_interleave_on_one_channel_and_replay() -> None:
    """The stream machine's steps (grpc_machine.py) against the planted server:
    two Syncs open together, a note sent on each, one cancelled, the other
    half-closed and judged; an Import and a Watch beside them. Every answer is
    judged, the case records every step, and `execute` of that case (what
    `--replay` runs) does the same steps again."""
    from protoproxy.fuzz.driver import Case
    from protoproxy.fuzz.grpc_machine import GrpcStreams

    driver = GrpcDriver(Options(proto=(str(PROTO),)))
    note = driver.by_label["planted.v1.Notes/Save"]
    raw = message_for(note.request, text="hi", tags=["a"])
    try:
        with PlantedServer() as srv:
            model = GrpcStreams(driver, srv.target)
            by = driver.by_label
            model.open(0, by["planted.v1.Notes/Sync"], None, False)
            model.open(1, by["planted.v1.Notes/Sync"], None, True)
            model.open(2, by["planted.v1.Notes/Import"], None, False)
            model.open(3, by["planted.v1.Notes/Watch"], raw, False)
            model.send(0, raw)
            model.send(1, raw)
            model.send(2, raw)
            model.cancel(1)
            model.close(0)
            model.close(2)
            model.close(3)
            model.teardown()
            steps = model.case.extra["steps"]
            assert [s[0] for s in steps] == ["open"] * 4 + ["send"] * 3 + ["cancel"] + ["close"] * 3
            assert model.case.wire == [raw] * 4  # Watch's request, then the three sent
            case = Case("grpc", model.case.label, [], [], extra={"steps": steps})
            obs = driver.execute(case, srv.target)
            assert obs.responses == 4
    finally:
        driver.close()


def message_for(descriptor: Any, **fields: Any) -> bytes:
    from google.protobuf import message_factory

    return bytes(message_factory.GetMessageClass(descriptor)(**fields).SerializeToString())
