"""The gRPC stub engine: GripMock's stub format, matched in pure Python.

No grpc and no asyncio here: a call arrives as protobuf-JSON dicts and leaves
as a `Reply`; the testbed's gRPC server does the wire. See docs/testbed.md,
"gRPC stubs (GripMock format)".
"""

from testbed.grpc_stubs.reply import STATUS_NAMES, Reply, StubError, status_name
from testbed.grpc_stubs.store import MAX_STUBS, BidiScript, StubStore, split_method

__all__ = [
    "MAX_STUBS",
    "STATUS_NAMES",
    "BidiScript",
    "Reply",
    "StubError",
    "StubStore",
    "split_method",
    "status_name",
]
