"""Kafka codec (sans-IO): framing, schema lookup, records, SASL and address rewriting.

Public surface:
- ``KafkaCodec``: the per-connection codec (proxy and fake-broker side);
- ``schema``: (api_key, version) -> kafka-python class, names, header versions, errors;
- ``framing``: encode/decode complete frames;
- ``records``: RecordBatch / MessageSet headers without decompressing;
- ``record_view`` / ``compression``: records decoded and previewed for the tail,
  decompressed within a hard limit;
- ``rewrite``: broker address rewriting and routing data;
- ``scanner`` / ``summary``: the hot path's linear-time body reading.

See docs/kafka-codec.md.
"""

from __future__ import annotations

from . import framing, records, rewrite, scanner, schema, summary
from .codec import STATUS_OK, STATUS_UNDECODED, KafkaCodec, SecretView
from .framing import RequestHeaderInfo

__all__ = [
    "STATUS_OK",
    "STATUS_UNDECODED",
    "KafkaCodec",
    "RequestHeaderInfo",
    "SecretView",
    "framing",
    "records",
    "rewrite",
    "scanner",
    "schema",
    "summary",
]
