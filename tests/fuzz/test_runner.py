"""`protoproxy fuzz` end to end with the line driver: the real proxy front, a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from protoproxy.fuzz import cli, registry
from protoproxy.fuzz.driver import ORACLES

from .linedriver import LineServer, register, spec


@pytest.fixture(autouse=True)
def line_driver() -> Iterator[None]:
    register()
    yield
    registry.DRIVERS.pop("line", None)
    registry.LISTENER_PROTOCOL.pop("line", None)


def fuzz(target: object, out: Path, *extra: str) -> int:
    argv = ["fuzz", "line", "--target", str(target), "--out", str(out), "--seed", "7"]
    return cli.main([*argv, "--quiet", *extra])


def test_planted_bug_is_found_shrunk_and_written(tmp_path: Path) -> None:
    with LineServer() as server:
        rc = fuzz(server.target, tmp_path, "--max-examples", "300", "--no-stateful")
    assert rc == 1
    files = sorted((tmp_path / "failures").iterdir())
    assert [f.name for f in files] == ["0001.json"]
    data = json.loads(files[0].read_text())
    assert data["format"] == "protoproxy-fuzz-replay/1"
    assert data["oracle"] == "not_a_server_error"
    assert data["detail"] == "b'!!\\n' -> ERR 500"
    assert data["case"]["wire"] == [b"!!\n".hex()]
    assert data["case"]["decoded"] == ["!!"]
    assert data["case"]["label"] == "lines=1"
    assert data["driver"] == "line" and data["driver_spec"] == spec()
    assert data["listener_protocol"] == "tcp"
    assert data["target"] == str(server.target)
    assert data["direct"] is False and data["stateful"] is False
    assert data["options"]["deadline_s"] == 5.0
    assert isinstance(data["seed"], int) and data["protoproxy"]

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["seed"] == 7
    assert [f["oracle"] for f in report["failures"]] == ["not_a_server_error"]
    assert report["failures"][0]["file"] == str(files[0])
    assert report["oracles"]["not_a_server_error"]["failures"] == 1
    assert sum(report["coverage"].values()) == report["cases"] > 1
    assert report["proxy"], "the proxy in front counted what passed"

    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    failed = {
        (tc.get("classname"), tc.get("name"))
        for tc in suite.iter("testcase")
        if tc.find("failure") is not None
    }
    assert failed == {("fuzz.line.oracle", "not_a_server_error"), ("fuzz.line.label", "lines=1")}
    assert suite.get("failures") == "2"
    assert suite.get("tests") == str(len(ORACLES) + len(report["coverage"]))

    page = (tmp_path / "report.html").read_text()
    assert "not_a_server_error" in page and "b&#x27;!!\\n&#x27; -&gt; ERR 500" in page
    assert "<script" not in page and "http" not in page.replace("protoproxy", "")


def test_replay_reproduces_then_reports_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LineServer() as server:
        assert fuzz(server.target, tmp_path, "--max-examples", "300", "--no-stateful") == 1
        replay = tmp_path / "failures" / "0001.json"
        assert cli.main(["fuzz", "--replay", str(replay)]) == 1
        assert "still fails: not_a_server_error" in capsys.readouterr().err
    with LineServer(fixed=True) as fixed:
        assert cli.main(["fuzz", "--replay", str(replay), "--target", str(fixed.target)]) == 0
        assert "no longer fails" in capsys.readouterr().err
        assert fixed.lines >= 2  # the case's line and the probe's ping reached it


def test_clean_run_exits_0_with_counts(tmp_path: Path) -> None:
    with LineServer(fixed=True) as server:
        rc = fuzz(server.target, tmp_path, "--max-examples", "40", "--no-stateful")
    assert rc == 0
    assert not (tmp_path / "failures").exists()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["cases"] == 40 and report["failures"] == []
    assert sum(report["coverage"].values()) == 40
    assert set(report["coverage"]) <= {f"lines={n}" for n in range(1, 5)}
    assert len(report["slowest"]) == len(report["coverage"])
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("failures") == "0"
    assert root.find("testsuite/testcase/failure") is None


def test_allow_status_accepts_the_server_error(tmp_path: Path) -> None:
    with LineServer() as server:
        rc = fuzz(
            server.target,
            tmp_path,
            "--max-examples",
            "60",
            "--no-stateful",
            "--allow-status",
            "500",
        )
    assert rc == 0


def test_direct_skips_the_proxy(tmp_path: Path) -> None:
    with LineServer() as server:
        rc = fuzz(server.target, tmp_path, "--max-examples", "300", "--no-stateful", "--direct")
    assert rc == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["direct"] is True and report["via"] == str(server.target)
    assert report["proxy"] == {}


def test_stateful_bug_is_found_by_the_state_machine(tmp_path: Path) -> None:
    with LineServer(fixed=True, stateful_bug=True) as server:
        assert (
            fuzz(server.target, tmp_path / "plain", "--max-examples", "100", "--no-stateful") == 0
        )
        rc = fuzz(server.target, tmp_path / "sm", "--max-examples", "400")
        assert rc == 1
        replay = tmp_path / "sm" / "failures" / "0001.json"
        data = json.loads(replay.read_text())
        assert data["stateful"] is True
        assert data["case"]["wire"] == [b"b\n".hex(), b"aaaa\n".hex()]
        assert data["detail"] == "b'aaaa\\n' -> ERR 503"
        assert cli.main(["fuzz", "--replay", str(replay)]) == 1


def test_keep_going_writes_distinct_failures(tmp_path: Path) -> None:
    with LineServer() as server:
        rc = fuzz(server.target, tmp_path, "--max-examples", "400", "--no-stateful", "--keep-going")
    assert rc == 1
    report = json.loads((tmp_path / "report.json").read_text())
    keys = [(f["oracle"], f["label"]) for f in report["failures"]]
    assert len(keys) >= 2 and len(set(keys)) == len(keys)
    assert len(list((tmp_path / "failures").iterdir())) == len(keys)


def test_unreachable_target_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LineServer() as server:
        target = server.target  # closed on exit: nothing listens there now
    assert fuzz(target, tmp_path, "--max-examples", "5") == 2
    assert f"cannot reach {target}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["fuzz", "line", "--target", "nowhere"], "--target"),
        (["fuzz", "line", "--target", "127.0.0.1:1", "--max-examples", "0"], "--max-examples"),
        (["fuzz", "line", "--target", "127.0.0.1:1", "--seconds", "x"], "--seconds"),
        (["fuzz", "line"], "--target"),
    ],
)
def test_usage_errors_name_the_option(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


def test_no_subcommand_nor_replay_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fuzz"]) == 2
    assert "--replay" in capsys.readouterr().err


def test_missing_driver_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    registry.register("line", "tests.fuzz.no_such_module:Nope", "tcp")
    assert cli.main(["fuzz", "line", "--target", "127.0.0.1:1"]) == 2
    assert "not built" in capsys.readouterr().err


def test_seconds_budget_runs_rounds_and_reports_the_rate(tmp_path: Path) -> None:
    with LineServer(fixed=True) as server:
        rc = fuzz(server.target, tmp_path, "--seconds", "1.5", "--no-stateful")
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["cases"] > 0 and report["failures"] == []
    assert report["cases_per_s"] > 0
    assert sum(report["coverage"].values()) == report["cases"]
