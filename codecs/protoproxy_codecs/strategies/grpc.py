"""gRPC length-prefixed messages for hypothesis, for a method of a user's service.

The service comes as a DescriptorPool, a FileDescriptorSet, or the bytes of
one (`protoc --descriptor_set_out --include_imports`), so a user needs no
generated code. Messages are `protobuf_messages` of the method's request or
response type, in gRPC's framing (flag byte, 4-byte length, payload),
sometimes gzip-compressed with the flag set, as `grpc-encoding: gzip` sends.
"""

from __future__ import annotations

import struct
from typing import Any, Literal, NamedTuple

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool
from hypothesis import strategies as st

from .protobuf import protobuf_messages


class GrpcFrame(NamedTuple):
    """One drawn message: the bytes on the wire and the protobuf message they carry."""

    frame: bytes
    value: Any
    compressed: bool


def _pool(source: Any) -> descriptor_pool.DescriptorPool:
    if isinstance(source, descriptor_pool.DescriptorPool):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        source = descriptor_pb2.FileDescriptorSet.FromString(bytes(source))
    if not isinstance(source, descriptor_pb2.FileDescriptorSet):
        raise TypeError(
            "grpc_messages wants a DescriptorPool, a FileDescriptorSet or its bytes, "
            f"not {type(source).__name__}"
        )
    pool = descriptor_pool.DescriptorPool()
    for file in source.file:
        pool.Add(file)
    return pool


def method_message(
    source: Any, method: str, direction: Literal["request", "response"] = "request"
) -> Any:
    """The message Descriptor of `method` ("pkg.Service/Method", leading slash optional)."""
    service, sep, name = method.lstrip("/").partition("/")
    if not sep:
        raise ValueError(f"method {method!r} is not 'package.Service/Method'")
    pool = _pool(source)
    try:
        m = pool.FindServiceByName(service).FindMethodByName(name)
    except KeyError:
        raise ValueError(f"no method {method!r} in the descriptors given") from None
    if m is None:
        raise ValueError(f"service {service!r} has no method {name!r}")
    if direction == "request":
        return m.input_type
    if direction == "response":
        return m.output_type
    raise ValueError(f"direction is 'request' or 'response', not {direction!r}")


def grpc_frame(payload: bytes, compress: bool) -> bytes:
    """gRPC's framing of one message; `compress` gzips it and sets the flag."""
    if compress:
        payload = bytes(cramjam.gzip.compress(payload))
    return struct.pack(">BL", 1 if compress else 0, len(payload)) + payload


def grpc_messages(
    descriptors: Any,
    method: str,
    direction: Literal["request", "response"] = "request",
    compression: bool | None = None,
    max_depth: int = 3,
) -> st.SearchStrategy[GrpcFrame]:
    """Framed messages of `method`; `compression` None draws both compressed and not."""
    desc = method_message(descriptors, method, direction)
    flags = st.booleans() if compression is None else st.just(compression)
    return st.tuples(protobuf_messages(desc, max_depth), flags).map(
        lambda mc: GrpcFrame(grpc_frame(mc[0].SerializeToString(), mc[1]), mc[0], mc[1])
    )
