"""The recorder's bounds and checks: caps, the full queue, reflection, bad config."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from protoproxy.config import Record, from_dict
from protoproxy.config_errors import ConfigError
from protoproxy.observe.stats import Stats
from protoproxy.record.model import HttpExchange
from protoproxy.record.writer import RecordWriter

from .calls import grpc_calls
from .conftest import address, files, recording_app
from .servers import PROTO, SERVICE, demo_schema, grpc_server, http_server


def _dropped(app: object) -> dict[tuple[str, ...], float]:
    fam = app.proxy.stats.families["protoproxy_record_dropped_total"]  # type: ignore[attr-defined]
    return dict(fam.values)


async def test_max_files_caps_what_is_written_and_counts_the_rest(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    async with (
        http_server() as hport,
        recording_app({"dir": str(rec), "max_files": 2}, None, hport) as app,
    ):
        base = f"http://{address(app, 'http')}"
        async with aiohttp.ClientSession() as s:
            for i in [1, 2, 3, 1, 4, 5]:  # five distinct requests, one repeated
                async with s.get(f"{base}/items?id={i}") as r:
                    assert r.status == 200
        await app.record.flush()
        assert _dropped(app) == {("http", "max_files"): 3.0}
    written = [
        json.loads(p.read_text())["request"]["url"]
        for p in files(rec / "http" / "mappings", "*.json")
    ]
    assert sorted(written) == ["/items?id=1", "/items?id=2"]


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    stats = Stats()
    dropped = stats.counter("protoproxy_record_dropped_total", "", ("listener", "reason"))
    writer = RecordWriter("api", Record(dir=tmp_path / "rec", queue=2), dropped)
    for i in range(5):  # no await in between: the writer task cannot run yet
        writer.submit(HttpExchange("GET", f"/{i}", [], b"", 200, [], b"ok"), "api")
    assert dropped.values == {("api", "queue_full"): 3.0}
    await writer.close()
    assert len(files(tmp_path / "rec" / "http" / "mappings", "*.json")) == 2


async def test_reflect_takes_the_schema_from_the_upstream(tmp_path: Path) -> None:
    schema = demo_schema()
    Req = schema.method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    rec = tmp_path / "rec"
    record = {"dir": str(rec), "schema": {"reflect": True}}
    async with grpc_server(schema, reflection=True) as gport, recording_app(record, gport) as app:
        await grpc_calls(address(app, "grpc"), Req)
    stubs = [json.loads(p.read_text()) for p in files(rec / "grpc" / SERVICE, "*.json")]
    unary = [s for s in stubs if s["method"] == "Unary"]
    assert sorted(s["input"]["equals"]["name"] for s in unary) == ["ann", "bob"]
    assert (rec / "grpc" / SERVICE / "descriptor_set.binpb").is_file()


def _cfg(record: dict, protocol: str = "http", second: dict | None = None) -> object:
    listeners = [
        {
            "name": "a",
            "listen": "127.0.0.1:0",
            "protocol": protocol,
            "upstream": "u",
            "record": record,
        }
    ]
    if second is not None:
        listeners.append({"name": "b", "listen": "127.0.0.1:0", "upstream": "u", "record": second})
    return from_dict(
        {"listeners": listeners, "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:1"]}]}
    )


@pytest.mark.parametrize(
    ("record", "protocol", "second", "problem"),
    [
        ({"dir": "r", "schema": {}}, "grpc", None, "listeners[0].record.schema: give exactly one"),
        (
            {"dir": "r", "schema": {"reflect": True, "descriptor_set": "x.binpb"}},
            "grpc",
            None,
            "listeners[0].record.schema: give exactly one",
        ),
        (
            {"dir": "r", "schema": {"import_paths": ["p"], "reflect": True}},
            "grpc",
            None,
            "import_paths go with protos",
        ),
        ({"dir": "r"}, "tcp", None, "listeners[0]: record needs a decoded protocol"),
        ({"dir": "r", "max_files": 0}, "http", None, "listeners[0].record.max_files"),
        ({"dir": "r", "colour": 1}, "http", None, "listeners[0].record.colour: unknown key"),
        (
            {"dir": "r"},
            "http",
            {"dir": "r", "max_files": 5},
            "listeners[1].record: r is also recorded into by listener 'a'",
        ),
    ],
)
def test_bad_record_settings_name_their_path(
    record: dict, protocol: str, second: dict | None, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(record, protocol, second)
    assert problem in str(err.value)


def test_listeners_may_share_a_folder_with_the_same_settings() -> None:
    _cfg({"dir": "r"}, "grpc", {"dir": "r"})


async def test_too_large_an_exchange_is_not_recorded(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    record = {"dir": str(rec), "max_exchange_bytes": 1000}
    async with http_server() as hport, recording_app(record, None, hport) as app:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://{address(app, 'http')}/binary") as r:  # 10 KiB
                assert r.status == 200 and len(await r.read()) == 10240
            async with s.get(f"http://{address(app, 'http')}/items?id=1") as r:
                assert r.status == 200
        await app.record.flush()
        assert _dropped(app) == {("http", "too_large"): 1.0}
    assert len(files(rec / "http" / "mappings", "*.json")) == 1


async def test_gzip_messages_are_recorded_decompressed(tmp_path: Path) -> None:
    from grpc import Compression, aio

    schema = demo_schema()
    types = schema.method(f"/{SERVICE}/Unary")
    assert types is not None
    rec = tmp_path / "rec"
    record = {"dir": str(rec), "schema": {"protos": [str(PROTO)]}}
    async with (
        grpc_server(schema) as gport,
        recording_app(record, gport) as app,
        aio.insecure_channel(address(app, "grpc"), compression=Compression.Gzip) as ch,
    ):
        call = ch.unary_unary(
            f"/{SERVICE}/Unary", request_serializer=types.request.SerializeToString
        )
        await call(types.request(name="zipped" * 50, n=1))
    [stub] = [json.loads(p.read_text()) for p in files(rec / "grpc" / SERVICE, "*.json")]
    assert stub["input"]["equals"]["name"] == "zipped" * 50
    assert stub["output"]["data"]["text"] == "hello " + "zipped" * 50


async def test_a_proto_that_does_not_compile_is_named_and_base64_is_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schema = demo_schema()
    Req = schema.method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage {\n')
    rec = tmp_path / "rec"
    record = {"dir": str(rec), "schema": {"protos": [str(bad)]}}
    async with grpc_server(schema) as gport, recording_app(record, gport) as app:
        await grpc_calls(address(app, "grpc"), Req)
    assert f"protoc could not compile {bad}" in caplog.text
    stubs = [json.loads(p.read_text()) for p in files(rec / "grpc" / SERVICE, "*.json")]
    assert stubs and all("data" not in s["output"] for s in stubs)
