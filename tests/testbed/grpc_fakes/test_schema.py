"""Where a fake's schema comes from (protos, a descriptor set, a real server's
reflection), and how a broken schema or stub is reported: naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_tools import protoc
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.config_errors import ConfigError
from testbed.grpc_fakes import wire
from testbed.grpc_fakes.schema import Schema, SchemaError, from_descriptor_set, from_protos
from testbed.threaded import TestbedThread

from .conftest import SHOP, SHOP_PROTO, Catalog, only_grpc, shop_service


def book_1(tb: TestbedThread, schema: Schema, listener: str = "shop") -> str:
    with grpc.insecure_channel(tb.address(listener)) as channel:
        item, _ = Catalog(schema, channel).get_item(id="book-1")
    name: str = item.name
    return name


def test_the_schema_has_every_method_and_kind(shop_schema: Schema) -> None:
    kinds = {path: m.kind for path, m in shop_schema.methods.items()}
    assert kinds == {
        "shop.v1.Catalog/GetItem": "unary",
        "shop.v1.Catalog/ListItems": "server_stream",
        "shop.v1.Catalog/RecordPrices": "client_stream",
        "shop.v1.Catalog/Chat": "bidi",
    }
    assert shop_schema.find_method("Catalog", "GetItem") is shop_schema.find_method(
        "shop.v1.Catalog", "GetItem"
    )
    assert shop_schema.find_method("Catalog", "Nope") is None


def test_a_protoc_error_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.proto"
    bad.write_text('syntax = "proto3";\npackage b;\nmessage M {\n  strnig name = 1;\n}\n')
    with pytest.raises(SchemaError) as caught:
        from_protos([bad], [])
    text = str(caught.value)
    assert "broken.proto:4" in text and "strnig" in text


def test_a_protoc_error_stops_the_testbed_naming_the_service(tmp_path: Path) -> None:
    bad = tmp_path / "broken.proto"
    bad.write_text('syntax = "proto3";\nimport "missing/thing.proto";\n')
    with pytest.raises(ConfigError) as caught:
        TestbedThread(only_grpc(shop_service(protos=[str(bad)], stubs=[]))).start()
    text = str(caught.value)
    assert "grpc.services[0]" in text and "broken.proto" in text and "missing/thing.proto" in text


def test_a_missing_proto_is_named(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"nowhere\.proto: no such"):
        from_protos([tmp_path / "nowhere.proto"], [])


def test_a_stub_file_that_does_not_fit_stops_the_testbed(tmp_path: Path) -> None:
    stub = {
        "service": "shop.v1.Catalog",
        "method": "GetItem",
        "input": {"equals": {"id": "a"}},
        "output": {"data": {"id": "a", "price": {"micros": "lots"}}},
    }
    (tmp_path / "bad.json").write_text(json.dumps(stub))
    with pytest.raises(ConfigError) as caught:
        TestbedThread(only_grpc(shop_service(stubs=[str(tmp_path)]))).start()
    text = str(caught.value)
    assert "bad.json" in text and "output.data" in text and "micros" in text


def test_descriptor_set_serves_the_same(tmp_path: Path, shop_schema: Schema) -> None:
    desc = tmp_path / "shop.desc"
    code = protoc.main(
        [
            "protoc",
            f"-I{SHOP / 'protos'}",
            f"-I{wire_protos()}",
            f"--descriptor_set_out={desc}",
            "--include_imports",
            str(SHOP_PROTO),
        ]
    )
    assert code == 0
    scenario = only_grpc(shop_service(protos=[], import_paths=[], descriptor_set=str(desc)))
    with TestbedThread(scenario) as tb:
        assert book_1(tb, shop_schema) == "The Pragmatic Programmer"
        assert tb.journal.grpc("shop.v1.Catalog/GetItem").count() == 1


def wire_protos() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def test_reflect_from_a_running_fake(shop_schema: Schema) -> None:
    """The schema a server's reflection gives: here a fake built from protos,
    reflected through the proxy, as a real server would be."""
    with TestbedThread(only_grpc(shop_service())) as real:
        mirror = shop_service(name="mirror", protos=[], import_paths=[])
        mirror["reflect_from"] = real.address("shop")
        with TestbedThread(only_grpc(mirror)) as tb:
            assert book_1(tb, shop_schema, "mirror") == "The Pragmatic Programmer"
            (entry,) = tb.journal.grpc("shop.v1.Catalog/GetItem")
            assert entry.service == "mirror"
        # reflection calls are not the user's calls: the real fake journalled none
        assert real.journal.grpc().count() == 0


def test_reflect_from_nowhere_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = shop_service(protos=[], import_paths=[], reflect_from=f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match=f"reflection at 127.0.0.1:{port}: UNAVAILABLE"):
        TestbedThread(only_grpc(mirror)).start()


@given(st.binary(max_size=512))
def test_garbage_descriptor_set_is_a_schema_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("desc") / "garbage.desc"
    path.write_bytes(data)
    with pytest.raises(SchemaError, match=r"garbage\.desc"):
        from_descriptor_set(path)


@given(
    st.dictionaries(
        st.from_regex(r"x-[a-z]{1,8}-bin", fullmatch=True), st.binary(max_size=64), max_size=5
    )
)
def test_binary_metadata_round_trips(values: dict[str, bytes]) -> None:
    as_dict = wire.metadata_dict(list(values.items()))
    assert dict(wire.wire_metadata(as_dict)) == values


@given(st.text(max_size=40))
def test_secret_names_are_redacted_whatever_else_is_sent(value: str) -> None:
    kept = wire.redacted({"authorization": value, "x-auth-token": value, "x-tenant": value})
    assert kept == {"authorization": "[redacted]", "x-auth-token": "[redacted]", "x-tenant": value}


def check(scenario: Path) -> subprocess.CompletedProcess[str]:
    """`protoproxy testbed --check` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "protoproxy", "testbed", "--check", str(scenario)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_check_compiles_the_protos_and_checks_the_stubs(tmp_path: Path) -> None:
    good = check(SHOP / "scenario.yaml")
    assert (good.returncode, good.stdout.strip()) == (0, f"{SHOP / 'scenario.yaml'}: ok")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "wrong.yaml").write_text(
        "- service: Catalog\n  method: ListItems\n  input: {equals: {}}\n"
        "  output: {stream: [{id: a}, {id: b, shelf: 3}]}\n"
    )
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "grpc:\n  services:\n    - name: shop\n"
        f"      protos: [{SHOP_PROTO}]\n      import_paths: [{SHOP / 'protos'}]\n"
        "      stubs: [stubs/]\n"
    )
    bad = check(scenario)
    assert bad.returncode == 2
    assert "grpc.services[0]" in bad.stderr
    assert "wrong.yaml" in bad.stderr and "output.stream[1]" in bad.stderr
    assert "shelf" in bad.stderr


def test_two_fakes_of_one_schema_each_have_a_listener(shop_schema: Schema) -> None:
    """Two fakes defining the same type names (two versions of one service, say)
    live in pools of their own, each behind its own listener."""
    other = {
        "service": "shop.v1.Catalog",
        "method": "GetItem",
        "input": {"equals": {"id": "book-1"}},
        "output": {"data": {"id": "book-1", "name": "Other shop's book"}},
    }
    scenario = only_grpc(shop_service(), shop_service(name="shop-b", stubs=[]))
    with TestbedThread(scenario) as tb:
        tb.testbed.services["shop-b"].stubs.add(other)
        assert book_1(tb, shop_schema, "shop") == "The Pragmatic Programmer"
        assert book_1(tb, shop_schema, "shop-b") == "Other shop's book"
        assert tb.address("shop") != tb.address("shop-b")
        assert [c.service for c in tb.journal.grpc("GetItem")] == ["shop", "shop-b"]
        assert tb.journal.grpc("GetItem", service="shop-b").count() == 1
