"""The gRPC layer over the HTTP/2 codec: calls, messages, statuses (sans-IO)."""

from .call import GrpcCall, is_grpc, split_path
from .framing import Budget, GrpcMessage, MessageReader
from .status import STATUS_CODES, STATUS_NAMES, decode_message, rst_status, status_name
from .timeout import parse_timeout

__all__ = [
    "STATUS_CODES",
    "STATUS_NAMES",
    "Budget",
    "GrpcCall",
    "GrpcMessage",
    "MessageReader",
    "decode_message",
    "is_grpc",
    "parse_timeout",
    "rst_status",
    "split_path",
    "status_name",
]
