"""`protoproxy fuzz grpc` end to end: a planted bug is found, shrunk and replayed through
the real proxy; the testbed's fake gRPC service raises no false alarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from protoproxy.fuzz import cli
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
    assert len(report["coverage"]) == 4  # every method of the service was called
