"""`protoproxy fuzz kafka` end to end: the real proxy front, a planted-bug responder, and
the testbed's fake cluster (which must raise no false alarm)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protoproxy.fuzz import cli
from protoproxy.fuzz.driver import Target
from protoproxy_codecs.kafka.api_keys import ApiKey
from testbed.threaded import TestbedThread

from .planted_kafka import PlantedKafka

KAFKA_ONLY = {
    "grpc": {"enabled": False},
    "http": {"enabled": False},
    "echo": {"enabled": False},
    "tail": False,
    "kafka": {"brokers": 1},
}


def fuzz(target: object, out: Path, *extra: str) -> int:
    argv = ["fuzz", "kafka", "--target", str(target), "--out", str(out), "--seed", "1"]
    return cli.main([*argv, "--quiet", *extra])


def test_planted_close_is_found_shrunk_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default budget (no --max-examples) finds the close, shrinks it to the one
    minimal request, writes it once; the replay fails until the responder is fixed."""
    with PlantedKafka() as server:
        assert fuzz(server.target, tmp_path) == 1
        files = sorted((tmp_path / "failures").iterdir())
        assert [f.name for f in files] == ["0001.json"]
        data = json.loads(files[0].read_text())
        assert data["oracle"] == "closed_with_reason"
        corr = -(2**31)  # the first edge the correlation id strategy offers
        assert data["detail"] == f"closed without answering Metadata v1 (correlation id {corr})"
        case = data["case"]
        assert case["label"] == "Metadata v1"
        assert case["decoded"] == [
            {
                "api": "Metadata",
                "api_key": 3,
                "version": 1,
                "correlation_id": corr,
                "client_id": None,
                "body": {"topics": [{"name": ""}] * 3},
            }
        ]
        # size, Metadata v1, the id, a null client id, three empty names
        assert case["wire"] == ["000000140003000180000000ffff00000003" + "0000" * 3]
        assert data["driver"] == "kafka" and data["listener_protocol"] == "kafka"
        report = json.loads((tmp_path / "report.json").read_text())
        assert [f["oracle"] for f in report["failures"]] == ["closed_with_reason"]
        assert report["proxy"], "the cases went through the proxy"
        capsys.readouterr()

        assert cli.main(["fuzz", "--replay", str(files[0])]) == 1
        assert "still fails: closed_with_reason" in capsys.readouterr().err
    with PlantedKafka(fixed=True) as fixed:
        assert cli.main(["fuzz", "--replay", str(files[0]), "--target", str(fixed.target)]) == 0
        assert "no longer fails" in capsys.readouterr().err
        assert fixed.requests >= 2  # the case's Metadata and the probe's ApiVersions


def test_api_narrows_what_is_drawn_and_server_errors_are_caught(tmp_path: Path) -> None:
    with PlantedKafka(server_error=True) as server:
        rc = fuzz(
            server.target, tmp_path / "narrow", "--api", "ApiVersions", "--max-examples", "30"
        )
        assert rc == 0
        report = json.loads((tmp_path / "narrow" / "report.json").read_text())
        assert report["cases"] == 30
        assert {label.split()[0] for label in report["coverage"]} == {"ApiVersions"}

        assert fuzz(server.target, tmp_path / "err", "--api", "Metadata", "--direct") == 1
        data = json.loads((tmp_path / "err" / "failures" / "0001.json").read_text())
        assert data["oracle"] == "not_a_server_error"
        assert data["detail"].endswith("answered UNKNOWN_SERVER_ERROR (-1)")
        assert data["case"]["label"] == "Metadata v1"

        allowed = ["--api", "Metadata", "--direct", "--max-examples", "20"]
        rc = fuzz(
            server.target, tmp_path / "ok", *allowed, "--allow-status", "UNKNOWN_SERVER_ERROR"
        )
        assert rc == 0


def test_unknown_api_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with PlantedKafka() as server:
        assert fuzz(server.target, Path("unused"), "--api", "Produce,Nope") == 2
    assert "--api Nope: no such Kafka API" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fake_broker() -> Iterator[Target]:
    """The fake cluster's broker itself: `protoproxy fuzz` puts its own proxy in front."""
    with TestbedThread(KAFKA_ONLY) as tb:
        bootstrap = tb.call(lambda t: t.services["kafka"].bootstrap_servers)
        yield Target.parse(bootstrap.split(",")[0])


def test_no_false_alarm_against_the_fake_cluster(tmp_path: Path, fake_broker: Target) -> None:
    """Every API the fake advertises, then the three every client uses: no failure.

    Which APIs a run draws is not fixed across sessions (hypothesis mixes in
    constants of the modules loaded), so the broad run asserts breadth, and the
    named APIs are asserted in a run that draws only them."""
    broad, named = tmp_path / "broad", tmp_path / "named"
    assert fuzz(fake_broker, broad, "--max-examples", "100", "--no-stateful") == 0
    report = json.loads((broad / "report.json").read_text())
    assert report["cases"] == 100 and report["failures"] == []
    # two cases in five pipeline 2 or 3 requests; only acks=0 Produce owes none
    assert report["responses"] > report["cases"]
    apis = {label.split()[0] for label in report["coverage"]}
    assert len(apis) >= 8, sorted(apis)
    only = "Produce,Fetch,Metadata"
    assert fuzz(fake_broker, named, "--max-examples", "60", "--no-stateful", "--api", only) == 0
    report = json.loads((named / "report.json").read_text())
    assert report["cases"] == 60 and report["failures"] == []
    assert {label.split()[0] for label in report["coverage"]} == set(only.split(","))


def test_stateful_sequences_raise_no_false_alarm(tmp_path: Path, fake_broker: Target) -> None:
    """The request-sequence machine (create, produce, fetch, latest, commit, fetch
    the commit) against the fake cluster, through the proxy: its model holds."""
    assert fuzz(fake_broker, tmp_path, "--max-examples", "80") == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failures"] == [] and report["stateful_cases"] >= 10
    assert any(label.startswith("stateful ") for label in report["coverage"])


def test_a_bug_only_a_sequence_shows_is_found_shrunk_and_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A planted bug in the fake cluster: a Produce to a partition that already
    holds records answers base offset 0. Single cases cannot see it; the machine
    finds it and shrinks it to create, produce, produce; the replay runs the
    steps again, model and all, and fails until the bug is gone."""
    from testbed.kafka import dispatch

    produce = dispatch.HANDLERS[ApiKey.PRODUCE]

    def planted(req: Any, body: Any) -> Any:
        answer = produce(req, body)
        for topic in answer.responses:
            for part in topic.partition_responses:
                if part.base_offset > 0:
                    part.base_offset = 0
        return answer

    with TestbedThread(KAFKA_ONLY) as tb:
        bootstrap = tb.call(lambda t: t.services["kafka"].bootstrap_servers)
        broker = Target.parse(bootstrap.split(",")[0])
        monkeypatch.setitem(dispatch.HANDLERS, ApiKey.PRODUCE, planted)
        assert fuzz(broker, tmp_path / "plain", "--max-examples", "100", "--no-stateful") == 0
        assert fuzz(broker, tmp_path / "sm", "--max-examples", "400") == 1
        (replay,) = (tmp_path / "sm" / "failures").iterdir()
        data = json.loads(replay.read_text())
        assert data["stateful"] is True and data["oracle"] == "model"
        steps = data["case"]["extra"]["steps"]
        topic = steps[0][1]
        assert steps == [
            ["create_topic", topic, 1],
            ["produce", topic, 0, [[None, ""]]],
            ["produce", topic, 0, [[None, ""]]],
        ]
        assert data["detail"] == (
            f"Produce of 1 to {topic}/0 answered base offset 0; the partition's end was 1"
        )
        capsys.readouterr()
        assert cli.main(["fuzz", "--replay", str(replay)]) == 1
        assert "still fails: model" in capsys.readouterr().err
        monkeypatch.setitem(dispatch.HANDLERS, ApiKey.PRODUCE, produce)
        assert cli.main(["fuzz", "--replay", str(replay)]) == 0
        assert "no longer fails" in capsys.readouterr().err


def test_a_share_of_cases_pipelines_several_requests(fake_broker: Target) -> None:
    """Over every API the fake speaks, two cases in five carry 2 or 3 requests.
    (A one_of of one frame or a list of them drew the list in about 1% of
    cases: hypothesis' mutations copy the single-frame cases before.)"""
    from hypothesis import HealthCheck, given, settings

    from protoproxy.fuzz.driver import Options
    from protoproxy.fuzz.kafka import KafkaDriver

    driver = KafkaDriver(Options())
    driver.prepare(fake_broker)
    sizes: list[int] = []

    @settings(
        max_examples=300,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(driver.strategy())
    def draw(case: Any) -> None:
        sizes.append(len(case.wire))

    draw()
    pipelined = sum(1 for n in sizes if n > 1)
    assert max(sizes) == 3 and pipelined >= len(sizes) // 4, (pipelined, len(sizes))
