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
The same rule gives the records and bytes per client id.

The in-flight gauge follows the codec's own count of pending requests
(`sync_in_flight`); the consumer-group gauges (high watermark, committed
offset, lag) are kept by `groups.ClusterGroups`, which owns their updates.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Exchange
from protoproxy_codecs.kafka import schema
from protoproxy_codecs.kafka.api_keys import ApiKey

from ..connection import Side
from ..observe.stats import Stats

if TYPE_CHECKING:
    from ..connection import Connection

# Label strings made once, not per message.
_VERSIONS = tuple(str(v) for v in range(64))
_PARTITIONS = tuple(str(p) for p in range(1024))
# Exchange attrs name the API ("Produce"), not its key.
_PRODUCE = ApiKey.PRODUCE.display_name
_FETCH = ApiKey.FETCH.display_name

# Bytes: a 100-byte heartbeat up to a 64 MiB fetch.
SIZE_BUCKETS: tuple[float, ...] = tuple(float(4**i * 64) for i in range(11))
#: conn.extra key: the codec's pending requests as last counted in the in-flight gauge
IN_FLIGHT = "kafka_in_flight"


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
        self.version_negotiations = stats.counter(
            "protoproxy_kafka_version_negotiations_total",
            "ApiVersions answers saying UNSUPPORTED_VERSION with the broker's ranges "
            "(KIP-511: the client retries lower; not an error)",
            ("listener", "version"),
        )
        self.partition_errors = stats.counter(
            "protoproxy_kafka_partition_errors_total",
            "Non-zero partition-level error codes in responses, by topic and partition",
            ("listener", "api", "topic", "partition", "error"),
        )
        self.client_records = stats.counter(
            "protoproxy_kafka_client_records_total",
            "Records produced (acknowledged) and fetched (delivered), by client id",
            ("listener", "client_id", "api"),
        )
        self.client_bytes = stats.counter(
            "protoproxy_kafka_client_bytes_total",
            "Record batch bytes produced (acknowledged) and fetched (delivered), by client id",
            ("listener", "client_id", "api"),
        )
        self.request_size = stats.histogram(
            "protoproxy_kafka_request_size_bytes",
            "Size of Kafka requests, size prefix included",
            ("listener", "api"),
            SIZE_BUCKETS,
        )
        self.response_size = stats.histogram(
            "protoproxy_kafka_response_size_bytes",
            "Size of Kafka responses, size prefix included",
            ("listener", "api"),
            SIZE_BUCKETS,
        )
        self.throttle = stats.counter(
            "protoproxy_kafka_throttle_seconds_total",
            "throttle_time_ms that responses asked clients to wait, summed, in seconds",
            ("listener", "api", "client_id"),
        )
        self.in_flight = stats.gauge(
            "protoproxy_kafka_requests_in_flight",
            "Requests relayed and awaiting their response, per listener",
            ("listener",),
        )
        self.high_watermark = stats.gauge(
            "protoproxy_kafka_partition_high_watermark",
            "Last high watermark seen in Fetch or ListOffsets (latest) responses",
            ("listener", "topic", "partition"),
        )
        self.committed_offset = stats.gauge(
            "protoproxy_kafka_consumer_group_committed_offset",
            "Last offset a group committed (acknowledged OffsetCommit) or fetched (OffsetFetch)",
            ("listener", "group", "topic", "partition"),
        )
        self.group_lag = stats.gauge(
            "protoproxy_kafka_consumer_group_lag",
            "High watermark minus the group's committed offset, as the proxy saw them",
            ("listener", "group", "topic", "partition"),
        )

    # -- in-flight requests -------------------------------------------------------
    def sync_in_flight(self, conn: Connection) -> None:
        """Move the gauge by what the codec's pending requests changed since last time.

        The codec knows exactly which requests await a response (drops, injected
        answers and pipelining included), so the gauge follows it rather than
        counting requests and responses separately.
        """
        extra = conn.extra
        before = extra.get(IN_FLIGHT, 0)
        if before is None:  # closed: connection_closed settled it
            return
        n = getattr(conn.codec, "pending", 0)
        if n != before:
            extra[IN_FLIGHT] = n
            self.in_flight.inc((conn.listener.name,), n - before)

    def connection_closed(self, conn: Connection) -> None:
        """Its unanswered requests are in flight no more."""
        before = conn.extra.get(IN_FLIGHT)
        conn.extra[IN_FLIGHT] = None
        if before:
            self.in_flight.inc((conn.listener.name,), -before)

    # -- exchange observer ------------------------------------------------------
    def on_exchanges(self, conn: Connection, exchanges: list[Exchange]) -> None:
        if conn.protocol != "kafka":
            return
        lname = conn.listener.name
        responses = self.responses.values
        self.sync_in_flight(conn)
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
                self.response_size.observe((lname, api), ex.response_bytes)
            errors = attrs.get("errors")
            if errors:
                for name, n in errors.items():
                    self.errors.inc((lname, api, name), n)
            if len(attrs) > 3:  # not just api, version and client_id
                self._facts(lname, api, attrs)
            records = attrs.get("records")
            if not records or attrs.get("undelivered"):
                continue
            client = attrs.get("client_id") or ""
            if api == _PRODUCE:
                # acks=0 has no answer: its records count once sent on
                outlet = conn.outlets[DOWNSTREAM if answered else UPSTREAM]
                failed = attrs.get("failed")
                self._count(
                    outlet,
                    lname,
                    records,
                    self.produce_records,
                    self.produce_bytes,
                    failed,
                    (lname, client, api),
                )
            elif api == _FETCH and answered:
                outlet = conn.outlets[DOWNSTREAM]
                self._count(
                    outlet,
                    lname,
                    records,
                    self.fetch_records,
                    self.fetch_bytes,
                    None,
                    (lname, client, api),
                )

    def _facts(self, lname: str, api: str, attrs: dict[str, Any]) -> None:
        """The rarer per-response facts: throttling, partition errors, negotiation."""
        throttle = attrs.get("throttle_ms")
        if throttle:
            self.throttle.inc((lname, api, attrs.get("client_id") or ""), throttle / 1000)
        perrors = attrs.get("partition_errors")
        if perrors:
            inc = self.partition_errors.inc
            name = schema.error_name
            for topic, partition, code in perrors:
                inc((lname, api, topic, partition_label(partition), name(code)))
        if attrs.get("version_negotiation"):
            self.version_negotiations.inc((lname, version_label(attrs["version"])))

    def _count(
        self,
        outlet: Any,
        lname: str,
        records: dict[str, dict[int, list[int]]],
        count: Any,
        size: Any,
        failed: set[tuple[str, int]] | None,
        client: tuple[str, str, str],
    ) -> None:
        if type(outlet) is Side:
            self._records(lname, records, count, size, failed, client)
        elif outlet is not None:  # held in a stage: count it when it leaves
            outlet.when_sent(partial(self._records, lname, records, count, size, failed, client))

    def _records(
        self,
        lname: str,
        records: dict[str, dict[int, list[int]]],
        count: Any,
        size: Any,
        failed: set[tuple[str, int]] | None,
        client: tuple[str, str, str],
    ) -> None:
        total = total_bytes = 0
        for topic, parts in records.items():
            for partition, (n, nbytes) in parts.items():
                if not n or (failed and (topic, partition) in failed):
                    continue
                key = (lname, topic, partition_label(partition))
                count.inc(key, n)
                size.inc(key, nbytes)
                total += n
                total_bytes += nbytes
        if total:
            self.client_records.inc(client, total)
            self.client_bytes.inc(client, total_bytes)
