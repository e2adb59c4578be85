"""Kafka metric families, and the exchange observer that feeds most of them.

Requests are counted as they pass (a request that never gets an answer still
happened); responses, latency, error codes and record counts are counted from
the codec's Exchanges, which already pair each response with its request by
correlation id. So the latency histogram gets exactly one sample per request
that was answered, and none for acks=0 Produce.

Record counts are what the client was told: records acknowledged to it and
records served to it. A response a fault withheld (``undelivered``) adds
nothing, and a response held in a toxic or delay stage is counted when it
leaves the proxy (`Outlet.when_sent`), not if the connection ends first.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Exchange

from ..connection import Side
from ..observe.stats import Stats

if TYPE_CHECKING:
    from ..connection import Connection

# Label strings made once, not per message.
_VERSIONS = tuple(str(v) for v in range(64))
_PARTITIONS = tuple(str(p) for p in range(1024))


def version_label(version: int) -> str:
    return _VERSIONS[version] if 0 <= version < 64 else str(version)


def partition_label(partition: int) -> str:
    return _PARTITIONS[partition] if 0 <= partition < 1024 else str(partition)


class KafkaMetrics:
    """Every Kafka family, created once per proxy in `proxy.stats`."""

    def __init__(self, stats: Stats) -> None:
        self.requests = stats.counter(
            "protoproxy_kafka_requests_total",
            "Kafka requests seen, by API, version and client id",
            ("listener", "api", "version", "client_id"),
        )
        self.responses = stats.counter(
            "protoproxy_kafka_responses_total",
            "Kafka responses matched to a request, by API, version and client id",
            ("listener", "api", "version", "client_id"),
        )
        self.latency = stats.latency_histogram(
            "protoproxy_kafka_request_duration_seconds",
            "Time from a request to the response with its correlation id",
            ("listener", "api"),
        )
        self.errors = stats.counter(
            "protoproxy_kafka_errors_total",
            "Non-zero error codes in Kafka responses, by name (one per occurrence)",
            ("listener", "api", "error"),
        )
        self.produce_records = stats.counter(
            "protoproxy_kafka_produce_records_total",
            "Records produced and acknowledged without error (acks=0: as sent)",
            ("listener", "topic", "partition"),
        )
        self.produce_bytes = stats.counter(
            "protoproxy_kafka_produce_bytes_total",
            "Record batch bytes produced and acknowledged without error",
            ("listener", "topic", "partition"),
        )
        self.fetch_records = stats.counter(
            "protoproxy_kafka_fetch_records_total",
            "Records served in Fetch responses",
            ("listener", "topic", "partition"),
        )
        self.fetch_bytes = stats.counter(
            "protoproxy_kafka_fetch_bytes_total",
            "Record batch bytes served in Fetch responses",
            ("listener", "topic", "partition"),
        )
        self.unknown = stats.counter(
            "protoproxy_kafka_unknown_requests_total",
            "Requests with an API key or version the codec does not know (forwarded as-is)",
            ("listener", "api_key", "version"),
        )
        self.undecodable = stats.counter(
            "protoproxy_kafka_undecodable_total",
            "Known API versions whose body did not decode (forwarded as-is)",
            ("listener", "api_key", "version", "kind"),
        )
        self.unmatched = stats.counter(
            "protoproxy_kafka_unmatched_responses_total",
            "Responses whose correlation id matched no outstanding request",
            ("listener",),
        )
        self.rewrites = stats.counter(
            "protoproxy_kafka_rewritten_responses_total",
            "Responses re-encoded with the proxy's broker addresses",
            ("listener", "api"),
        )
        self.listener_failures = stats.counter(
            "protoproxy_kafka_broker_listener_failures_total",
            "Brokers advertised unrewritten because no listener could be opened",
            ("listener",),
        )
        self.brokers = stats.gauge(
            "protoproxy_kafka_brokers",
            "Broker listeners open behind a bootstrap listener",
            ("listener",),
        )

    # -- exchange observer ------------------------------------------------------
    def on_exchanges(self, conn: Connection, exchanges: list[Exchange]) -> None:
        if conn.protocol != "kafka":
            return
        lname = conn.listener.name
        responses = self.responses.values
        for ex in exchanges:
            attrs = ex.attrs
            api = attrs.get("api", "")
            answered = ex.response_bytes > 0
            if answered:
                version = attrs.get("version")
                key = (
                    lname,
                    api,
                    "-" if version is None else version_label(version),
                    attrs.get("client_id") or "",
                )
                if key in responses:
                    responses[key] += 1
                else:
                    self.responses.inc(key)
                self.latency.observe((lname, api), ex.finished - ex.started)
            errors = attrs.get("errors")
            if errors:
                for name, n in errors.items():
                    self.errors.inc((lname, api, name), n)
            records = attrs.get("records")
            if not records or attrs.get("undelivered"):
                continue
            if api == "Produce":
                # acks=0 has no answer: its records count once sent on
                outlet = conn.outlets[DOWNSTREAM if answered else UPSTREAM]
                failed = attrs.get("failed")
                self._count(
                    outlet, lname, records, self.produce_records, self.produce_bytes, failed
                )
            elif api == "Fetch" and answered:
                outlet = conn.outlets[DOWNSTREAM]
                self._count(outlet, lname, records, self.fetch_records, self.fetch_bytes, None)

    def _count(
        self,
        outlet: Any,
        lname: str,
        records: dict[str, dict[int, list[int]]],
        count: Any,
        size: Any,
        failed: set[tuple[str, int]] | None,
    ) -> None:
        if type(outlet) is Side:
            self._records(lname, records, count, size, failed)
        elif outlet is not None:  # held in a stage: count it when it leaves
            outlet.when_sent(partial(self._records, lname, records, count, size, failed))

    @staticmethod
    def _records(
        lname: str,
        records: dict[str, dict[int, list[int]]],
        count: Any,
        size: Any,
        failed: set[tuple[str, int]] | None,
    ) -> None:
        for topic, parts in records.items():
            for partition, (n, nbytes) in parts.items():
                if not n or (failed and (topic, partition) in failed):
                    continue
                key = (lname, topic, partition_label(partition))
                count.inc(key, n)
                size.inc(key, nbytes)
