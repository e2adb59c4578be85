"""Link types and file formats a capture may come in; the CLI's three output formats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from scapy.all import IP, CookedLinux, Loopback, rdpcap, wrpcap, wrpcapng  # type: ignore[attr-defined]

from protoproxy.decode import cli
from protoproxy.decode.decoder import decode, rows
from protoproxy.decode.output import ACCESS_LOG_FIELDS

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "captures" / "grpcio-unary-stream.pcap"


def _ops(path: Path) -> list[tuple[str, str, int]]:
    return [(r["operation"], r["status"], r["stream_id"]) for r in rows(decode(path))]


def _relinked(layer: str) -> list:
    out = []
    for p in rdpcap(str(FIXTURE)):
        ip = p[IP]
        q = Loopback(type=2) / ip if layer == "null" else CookedLinux(proto=0x0800) / ip
        q.time = p.time
        out.append(q)
    return out


@pytest.mark.parametrize("kind", ["pcapng", "null", "cooked"])
def test_same_decode_whatever_the_container(kind: str, tmp_path: Path) -> None:
    want = _ops(FIXTURE)
    assert len(want) == 2
    path = tmp_path / f"x.{kind}"
    if kind == "pcapng":
        wrpcapng(str(path), rdpcap(str(FIXTURE)))
    else:
        wrpcap(str(path), _relinked(kind))
    assert _ops(path) == want
    if kind == "pcapng":
        assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # really a pcapng section header


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_cli_formats(capsys: pytest.CaptureFixture[str]) -> None:
    table = _cli(["decode", str(FIXTURE)], capsys)
    assert "/protoproxy.testbed.v1.TestService/Unary" in table.splitlines()[1]
    lines = [
        json.loads(x)
        for x in _cli(["decode", str(FIXTURE), "--format", "jsonl"], capsys).splitlines()
    ]
    assert [x["stream_id"] for x in lines] == [1, 3]
    access = [
        json.loads(x)
        for x in _cli(["decode", str(FIXTURE), "--format", "access-log"], capsys).splitlines()
    ]
    assert set(access[0]) <= set(ACCESS_LOG_FIELDS)
    assert access[0]["proxy_time"] is None and access[0]["upstream_connect"] is not None
    summary = _cli(["decode", str(FIXTURE), "--summary", "--format", "jsonl"], capsys)
    assert "n=1" in summary.splitlines()[-1]


TESTBED_PROTO = FIXTURE.parents[1] / "protos" / "testbed.proto"


def test_descriptors_type_the_messages(capsys: pytest.CaptureFixture[str]) -> None:
    raw = [
        json.loads(x)
        for x in _cli(["decode", str(FIXTURE), "--format", "jsonl"], capsys).splitlines()
    ]
    typed = [
        json.loads(x)
        for x in _cli(
            ["decode", str(FIXTURE), "--format", "jsonl", "--descriptors", str(TESTBED_PROTO)],
            capsys,
        ).splitlines()
    ]
    assert "raw" in raw[0]["messages"][1]["display"]
    unary = typed[0]["messages"]
    assert [(m["direction"], m["display"]["type"]) for m in unary] == [
        ("request", "protoproxy.testbed.v1.Request"),
        ("response", "protoproxy.testbed.v1.Response"),
    ]
    assert unary[1]["display"]["json"]["method"] == "/protoproxy.testbed.v1.TestService/Unary"
    # the server stream's responses, each typed
    stream = [m for m in typed[1]["messages"] if m["direction"] == "response"]
    assert stream and all(m["display"]["type"] == "protoproxy.testbed.v1.Response" for m in stream)


def test_bad_descriptors_are_a_usage_error(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    bad = tmp_path / "bad.binpb"
    bad.write_bytes(b"\xff\xff not a descriptor set")
    args = parser.parse_args(["decode", str(FIXTURE), "--descriptors", str(bad)])
    assert args.func(args) == 2
