"""The stub-against-schema check on arbitrary stub JSON: it accepts a stub or
refuses it with a StubCheckError naming where, and never crashes otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.grpc_fakes.check import StubCheckError, check_stub
from testbed.grpc_fakes.schema import Schema, from_protos
from testbed.grpc_fakes.server import add_service_files

from .conftest import SHOP_PROTO

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["id", "name", "price", "micros", "tags", "data", "x", "@type", "type"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)
OUTPUT_KEYS = st.sampled_from(["data", "stream", "details", "error", "code"])
INPUT_KEYS = st.sampled_from(["equals", "contains", "matches", "glob", "anyOf"])


@given(
    method=st.sampled_from(["GetItem", "ListItems", "RecordPrices", "Chat", "Nope"]),
    output=st.dictionaries(OUTPUT_KEYS, JSON, max_size=4),
    matcher=st.dictionaries(INPUT_KEYS, JSON, max_size=3),
)
def test_check_accepts_or_names_the_problem(
    shop_schema: Schema, method: str, output: dict[str, Any], matcher: dict[str, Any]
) -> None:
    add_service_files(shop_schema)
    stub = {"service": "Catalog", "method": method, "input": matcher, "output": output}
    try:
        check_stub(stub, shop_schema, "stubs/x.yaml: [3]")
    except StubCheckError as exc:
        assert str(exc).startswith("stubs/x.yaml: [3]")


def test_a_valid_stub_passes(shop_schema: Schema) -> None:
    stub = {
        "service": "shop.v1.Catalog",
        "method": "GetItem",
        "input": {"equals": {"id": "a"}, "anyOf": [{"glob": {"id": "b*"}}]},
        "output": {"data": {"id": "a", "price": {"micros": "7"}, "tags": ["x"]}},
    }
    check_stub(stub, shop_schema, "api")


@pytest.mark.parametrize(
    ("stub", "named"),
    [
        ({"service": "Catalog"}, "needs `service` and `method`"),
        ({"service": "Catalog", "method": "GetItem", "output": {"data": [1]}}, "output.data"),
        (
            {
                "service": "Catalog",
                "method": "GetItem",
                "sequence": [{"data": {}}, {"data": {"z": 1}}],
            },
            "sequence[1].data",
        ),
        (
            {
                "service": "Catalog",
                "method": "GetItem",
                "output": {"error": "x", "code": 5, "details": [{"reason": "R"}]},
            },
            "output.details[0]: needs '@type'",
        ),
    ],
)
def test_problems_are_named_by_path(shop_schema: Schema, stub: dict[str, Any], named: str) -> None:
    with pytest.raises(StubCheckError, match=named.replace("[", r"\[").replace("]", r"\]")):
        check_stub(stub, shop_schema, "api")


def test_nested_request_fields_are_checked_to_the_leaf(tmp_path: Path) -> None:
    proto = tmp_path / "orders.proto"
    proto.write_text(
        'syntax = "proto3";\npackage o;\n'
        "message Money { int64 micros = 1; }\n"
        "message Query { Money max = 1; map<string, string> labels = 2; }\n"
        "service Orders { rpc Find(Query) returns (Money); }\n"
    )
    schema = from_protos([proto])
    ok = {"equals": {"max": {"micros": "5"}, "labels": {"any-key": "v"}}}
    check_stub({"service": "Orders", "method": "Find", "input": ok}, schema, "api")
    bad = {"contains": {"max": {"cents": 5}}}
    with pytest.raises(StubCheckError, match=r"input\.contains\.max\.cents: o\.Money has no field"):
        check_stub({"service": "Orders", "method": "Find", "input": bad}, schema, "api")


def test_a_well_known_output_type_takes_its_own_json(tmp_path: Path) -> None:
    proto = tmp_path / "clock.proto"
    proto.write_text(
        'syntax = "proto3";\npackage c;\nimport "google/protobuf/timestamp.proto";\n'
        "message Req { string zone = 1; }\n"
        "service Clock { rpc Now(Req) returns (google.protobuf.Timestamp); }\n"
    )
    schema = from_protos([proto])
    stub = {"service": "Clock", "method": "Now", "output": {"data": "2026-01-02T03:04:05Z"}}
    check_stub(stub, schema, "api")
    with pytest.raises(StubCheckError, match=r"output\.data: not a google\.protobuf\.Timestamp"):
        check_stub({**stub, "output": {"data": "yesterday"}}, schema, "api")
    with pytest.raises(StubCheckError, match=r"a shop\.v1\.Item is a JSON object"):
        check_stub(
            {"service": "Catalog", "method": "GetItem", "output": {"data": "x"}},
            from_protos([SHOP_PROTO], [SHOP_PROTO.parents[2]]),
            "api",
        )
