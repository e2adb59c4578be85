"""Hypothesis strategies for every protocol protoproxy decodes, for users' property tests.

Each strategy draws values that are valid on the wire, paired with what they
mean, so a test can check a parser, a server or a client against a known
answer; `mutations` turns any of them into protocol-valid abuse. They import
hypothesis, the codecs and the protocol libraries only (no I/O): see
docs/fuzzing.md.
"""

from __future__ import annotations

from .grpc import GrpcFrame, grpc_messages, method_message
from .http1 import Req, Resp, http1_requests, http1_responses, render_request, render_response
from .http2 import (
    HpackBlock,
    Http2Conversation,
    hpack_blocks,
    http2_conversations,
    http2_frames,
)
from .kafka import KafkaFrame, kafka_requests, kafka_responses
from .kafka_records import BatchSpec, RecordSpec, batch_specs, encode_batch, record_sets
from .mutations import mutations
from .protobuf import protobuf_messages

__all__ = [
    "BatchSpec",
    "GrpcFrame",
    "HpackBlock",
    "Http2Conversation",
    "KafkaFrame",
    "RecordSpec",
    "Req",
    "Resp",
    "batch_specs",
    "encode_batch",
    "grpc_messages",
    "hpack_blocks",
    "http1_requests",
    "http1_responses",
    "http2_conversations",
    "http2_frames",
    "kafka_requests",
    "kafka_responses",
    "method_message",
    "mutations",
    "protobuf_messages",
    "record_sets",
    "render_request",
    "render_response",
]
