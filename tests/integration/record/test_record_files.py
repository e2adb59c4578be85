"""What `record` writes: GripMock stubs, WireMock mappings and the replay scenario.

Real grpcio and aiohttp servers behind the real proxy; the files are read
back as the fakes would read them, and the scenario is validated by the
testbed's own scenario model.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from google.protobuf import descriptor_pb2

from testbed.scenario import load_scenario

from .calls import grpc_calls, http_calls
from .conftest import address, files, recording_app
from .servers import BINARY_BODY, PROTO, SERVICE, demo_schema, grpc_server, http_server


def _stubs(root: Path) -> dict[tuple[str, str], dict]:
    """Stubs by (method, first request's name)."""
    out = {}
    for p in files(root / "grpc" / SERVICE, "*.json"):
        stub = json.loads(p.read_text())
        first = stub["inputs"][0] if "inputs" in stub else stub["input"]
        out[(stub["method"], first.get("equals", {}).get("name", ""))] = stub
    return out


async def test_grpc_and_http_recorded_as_stubs_and_mappings(tmp_path: Path) -> None:
    schema = demo_schema()
    Req = schema.method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    rec = tmp_path / "rec"
    record = {"dir": str(rec), "schema": {"protos": [str(PROTO)]}, "keep_headers": ["X-Trace"]}
    async with (
        grpc_server(schema) as gport,
        http_server() as hport,
        recording_app(record, gport, hport) as app,  # its stop writes what is queued
    ):
        await grpc_calls(address(app, "grpc"), Req)
        await http_calls(f"http://{address(app, 'http')}")

    stubs = _stubs(rec)
    # seven calls, one a repeat: six distinct stubs
    assert sorted(stubs) == [
        ("Bidi", "x"),
        ("ClientStream", "a"),
        ("Fail", "widget"),
        ("ServerStream", "s"),
        ("Unary", "ann"),
        ("Unary", "bob"),
    ]
    ann = stubs[("Unary", "ann")]
    assert ann["service"] == SERVICE
    assert ann["input"] == {
        "equals": {"name": "ann", "n": 3, "blob": base64.b64encode(b"\x00\x01\xff").decode()}
    }
    out = ann["output"]
    assert out["data"] == {"text": "hello ann", "count": "6", "blob": "AAH/"}
    assert out["headers"] == {"x-api-key": "[redacted]", "x-trace": "t-1"}
    assert out["trailers"] == {"x-served-by": "demo", "authorization": "[redacted]"}
    assert "code" not in out
    fail = stubs[("Fail", "widget")]["output"]
    assert fail["code"] == 9 and fail["error"] == "no widget"
    assert fail["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "OUT_OF_STOCK",
            "domain": "demo",
        }
    ]
    ss = stubs[("ServerStream", "s")]["output"]["stream"]
    assert [m["text"] for m in ss] == ["s-0", "s-1", "s-2"]
    cs = stubs[("ClientStream", "a")]
    assert [i["equals"]["name"] for i in cs["inputs"]] == ["a", "b", "c"]
    assert cs["output"]["data"]["text"] == "a+b+c"
    bidi = stubs[("Bidi", "x")]
    assert [i["equals"]["name"] for i in bidi["inputs"]] == ["x", "y"]
    assert [m["text"] for m in bidi["output"]["stream"]] == ["echo x", "echo y"]

    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString((rec / "grpc" / SERVICE / "descriptor_set.binpb").read_bytes())
    assert [f.name for f in fds.file] == ["recdemo.proto"]

    mappings = {}
    for p in files(rec / "http" / "mappings", "*.json"):
        m = json.loads(p.read_text())
        mappings[(m["request"]["method"], m["request"]["url"])] = m
    assert sorted(mappings) == [
        ("GET", "/binary"),
        ("GET", "/items?id=7"),
        ("GET", "/missing"),
        ("POST", "/echo"),
        ("POST", "/text"),
    ]
    items = mappings[("GET", "/items?id=7")]
    assert "bodyPatterns" not in items["request"]
    assert items["response"]["status"] == 200
    assert json.loads(items["response"]["body"]) == {"id": "7", "name": "item 7"}
    headers = items["response"]["headers"]
    assert headers["set-cookie"] == "[redacted]"
    assert headers["x-trace"] == "h-1"
    assert "content-length" not in headers
    echo = mappings[("POST", "/echo")]
    assert echo["request"]["bodyPatterns"] == [{"equalToJson": {"b": [1, 2], "a": "x"}}]
    assert echo["response"]["status"] == 201
    assert mappings[("POST", "/text")]["request"]["bodyPatterns"] == [{"equalTo": "hi there"}]
    assert mappings[("GET", "/missing")]["response"]["status"] == 404
    binary = mappings[("GET", "/binary")]["response"]
    assert (rec / "http" / "__files" / binary["bodyFileName"]).read_bytes() == BINARY_BODY

    sc = load_scenario(rec / "scenario.yaml")
    [svc] = sc.grpc.services
    assert svc.descriptor_set == rec / "grpc" / SERVICE / "descriptor_set.binpb"
    assert svc.stubs == [rec / "grpc" / SERVICE]
    [web] = sc.http.services
    assert web.mappings == [rec / "http" / "mappings"]
    assert not sc.kafka.enabled and not sc.echo.enabled


async def test_without_a_schema_messages_are_base64(tmp_path: Path) -> None:
    schema = demo_schema()
    Req = schema.method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    rec = tmp_path / "rec"
    record = {"dir": str(rec), "keep_headers": ["x-api-key"]}
    async with grpc_server(schema) as gport, recording_app(record, gport) as app:
        await grpc_calls(address(app, "grpc"), Req)
    by_method: dict[str, list[dict]] = {}
    for p in files(rec / "grpc" / SERVICE, "*.json"):
        stub = json.loads(p.read_text())
        by_method.setdefault(stub["method"], []).append(stub)
    assert not (rec / "grpc" / SERVICE / "descriptor_set.binpb").exists()
    ann = next(
        s
        for s in by_method["Unary"]
        if Req.FromString(base64.b64decode(s["input"]["equals_b64"])).name == "ann"
    )
    want = schema.method(f"/{SERVICE}/Unary").response(  # type: ignore[union-attr]
        text="hello ann", count=6, blob=b"\x00\x01\xff"
    )
    assert base64.b64decode(ann["output"]["data_b64"]) == want.SerializeToString()
    assert ann["output"]["headers"]["x-api-key"] == "s3cret-key"  # kept by keep_headers
    assert len(by_method["ServerStream"][0]["output"]["stream_b64"]) == 3
    assert len(by_method["ClientStream"][0]["inputs"]) == 3
    # the fake needs a schema: the scenario names the service in a comment instead
    text = (rec / "scenario.yaml").read_text()
    assert f"# gRPC service {SERVICE} was recorded without a schema" in text
    sc = load_scenario(rec / "scenario.yaml")
    assert not sc.grpc.enabled and not sc.grpc.services
