"""Acceptance 4: Kafka resilience under random faults, as a hypothesis state machine.

kafka-python's idempotent producer and a consumer group run through the
proxy against the fake cluster while random steps inject Kafka aborts,
request and response drops, connection resets and closes, delays, broker
stops and starts, and leader moves. After every step:

- every acknowledged record is in the log exactly once, in acknowledgement
  order per partition; a record whose send failed is there at most once;
- the consumer only ever sees records of the log, per partition in offset order;
- the proxy keeps serving (a new client connection gets Metadata);
- the proxy's counts equal what the clients saw: the records acknowledged to
  them and the records served to them in Fetch responses, per topic, as
  kafka-python itself decoded them off its sockets (`ClientTap`); and every
  Kafka abort it injected shows in its error counters.

CI runs 25 examples of a few steps each (the default run's time budget);
``HYPOTHESIS_PROFILE=deep`` runs 500, ``PROTOPROXY_RESILIENCE_EXAMPLES=N`` any N.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from kafka.errors import KafkaError
from kafka.protocol.parser import KafkaProtocol
from kafka.record import MemoryRecords

from protoproxy.faults.model import FaultSpec
from protoproxy_codecs.kafka import framing
from tests.integration.kafka.rig import KafkaRig

PARTITIONS = 2
BROKERS = 3
EXAMPLES = int(
    os.environ.get(
        # CI: 25 (about 1 minute on the 2-core machine; derandomized, the same 25 each run)
        "PROTOPROXY_RESILIENCE_EXAMPLES",
        500 if settings.default.max_examples >= 500 else 25,
    )
)

# (api, error, direction) for aborts: retriable errors a client must ride out.
ABORTS = [
    ("Produce", "NOT_LEADER_OR_FOLLOWER"),
    ("Produce", "REQUEST_TIMED_OUT"),
    ("Metadata", "LEADER_NOT_AVAILABLE"),
    ("Fetch", "NOT_LEADER_OR_FOLLOWER"),
    ("FindCoordinator", "COORDINATOR_NOT_AVAILABLE"),
    ("Heartbeat", "REBALANCE_IN_PROGRESS"),
    ("OffsetCommit", "COORDINATOR_LOAD_IN_PROGRESS"),
    ("JoinGroup", "COORDINATOR_LOAD_IN_PROGRESS"),
]
CUTS = ["reset", "close"]

_rig: KafkaRig | None = None
_ids = itertools.count()


def _record_count(data: Any) -> int:
    """Records in a records field, counted by kafka-python's own batch reader."""
    if not data:
        return 0
    return sum(batch.records_count for batch in MemoryRecords(bytes(data)))


class ClientTap:
    """What kafka-python's clients were told, as kafka-python decoded it.

    Wraps the clients' protocol parser: every Produce request it sends is
    remembered by correlation id, and every response it accepts (in order,
    with the right correlation id) is tallied: records acknowledged without
    error per topic from Produce responses, records served per topic from
    Fetch responses. This is the clients' side of "the stats equal what the
    clients saw", decoded by the client library rather than by our codec.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: Counter[str] = Counter()
        self.fetched: Counter[str] = Counter()
        self.topic_names: dict[Any, str] = {}

    def install(self, mp: pytest.MonkeyPatch) -> None:
        tap = self
        send_request = KafkaProtocol.send_request
        receive_bytes = KafkaProtocol.receive_bytes

        def tapped_send(proto: Any, request: Any, correlation_id: int | None = None) -> int:
            corr = send_request(proto, request, correlation_id)
            if type(request).__name__ == "ProduceRequest":
                sent = {
                    (t.name, p.index): _record_count(p.records)
                    for t in request.topic_data
                    for p in t.partition_data
                }
                proto.__dict__.setdefault("_tap_produce", {})[corr] = sent
            return corr

        def tapped_receive(proto: Any, data: bytes) -> list[tuple[int, Any]]:
            responses = receive_bytes(proto, data)
            for corr, response in responses:
                tap.tally(proto, corr, response)
            return responses

        mp.setattr(KafkaProtocol, "send_request", tapped_send)
        mp.setattr(KafkaProtocol, "receive_bytes", tapped_receive)

    def tally(self, proto: Any, corr: int, response: Any) -> None:
        kind = type(response).__name__
        if kind == "ProduceResponse":
            sent = proto.__dict__.get("_tap_produce", {}).pop(corr, None)
            if sent is None:
                return
            with self.lock:
                for t in response.responses:
                    for p in t.partition_responses:
                        if p.error_code == 0:
                            self.acked[t.name] += sent.get((t.name, p.index), 0)
        elif kind == "FetchResponse":
            with self.lock:
                for t in response.responses:
                    name = getattr(t, "topic", None) or self.topic_names.get(t.topic_id, "?")
                    for p in t.partitions:
                        self.fetched[name] += _record_count(p.records)

    def counts(self, topic: str) -> tuple[int, int]:
        with self.lock:
            return self.acked[topic], self.fetched[topic]


_tap = ClientTap()


@pytest.fixture(scope="module", autouse=True)
def kafka_rig() -> Iterator[KafkaRig]:
    global _rig
    with pytest.MonkeyPatch.context() as mp, KafkaRig(brokers=BROKERS, seed=11) as rig:
        _tap.install(mp)
        _rig = rig
        yield rig
        _rig = None


def _engine(rig: KafkaRig) -> Any:
    return rig.app.faults


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def _metadata_roundtrip(bootstrap: str) -> None:
    """A raw Metadata v1 request through the proxy: is it still serving?

    A fault may hit the probe itself (each cut fault acts once), so a closed
    probe is retried; three in a row is a proxy that stopped serving.
    """
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    for attempt in range(3):
        frame = framing.encode_request(3, 1, attempt, "probe", {"topics": []})
        try:
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(frame)
                size = struct.unpack(">i", _recv_exactly(s, 4))[0]
                body = _recv_exactly(s, size)
        except (ConnectionError, TimeoutError):
            continue
        assert struct.unpack_from(">i", body, 0)[0] == attempt  # its correlation id
        return
    raise AssertionError("the proxy stopped answering Metadata")


#: How long the proxy's counts may lag the clients' (responses in transit)
SETTLE = 3.0

#: A poll that has not returned by then is a wedged client (see `consume`).
CLIENT_STUCK_AFTER = 20.0

#: Stream toxics the machine adds and removes while traffic flows.
TOXICS: dict[str, dict[str, Any]] = {
    "latency": {
        "type": "latency",
        "stream": "downstream",
        "attributes": {"latency": 20, "jitter": 10},
    },
    "slicer": {
        "type": "slicer",
        "stream": "upstream",
        "attributes": {"average_size": 64, "size_variation": 32, "delay": 100},
    },
    "bandwidth": {"type": "bandwidth", "stream": "downstream", "attributes": {"rate": 2048}},
}


class KafkaUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert _rig is not None
        self.rig = _rig
        self.n = next(_ids)
        self.topic = f"res-{self.n}"
        self.group = f"res-g-{self.n}"
        self.acked: dict[int, list[bytes]] = defaultdict(list)
        self.failed: set[bytes] = set()
        self.consumed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self.seq = 0
        self.stopped: list[int] = []
        self.aborts: dict[str, tuple[str, str]] = {}
        self.toxics: list[str] = []
        self.wedged_consumers = 0
        self.faults = 0
        self.producer: Any = None
        self.consumer: Any = None

    # -- set-up and tear-down ----------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        from kafka import KafkaProducer

        rig = self.rig
        rig.run(
            lambda: rig.cluster.create_topic(
                self.topic, partitions=PARTITIONS, replication_factor=BROKERS
            )
        )  # type: ignore[union-attr]
        self.producer = KafkaProducer(
            bootstrap_servers=rig.bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            request_timeout_ms=1500,
            delivery_timeout_ms=8000,
            retry_backoff_ms=20,
            reconnect_backoff_ms=20,
            max_in_flight_requests_per_connection=5,
        )

    def _consumer(self) -> Any:
        if self.consumer is None:
            from kafka import KafkaConsumer

            self.consumer = KafkaConsumer(
                bootstrap_servers=self.rig.bootstrap,
                group_id=self.group,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
                session_timeout_ms=6000,
                heartbeat_interval_ms=300,
                request_timeout_ms=3000,
                retry_backoff_ms=20,
                reconnect_backoff_ms=20,
                auto_commit_interval_ms=200,
            )
            self.consumer.subscribe([self.topic])
        return self.consumer

    def teardown(self) -> None:
        rig = self.rig
        rig.run(lambda: _engine(rig).reset())
        for node in self.stopped:
            rig.call(lambda node=node: rig.cluster.start_broker(node))  # type: ignore[union-attr]
        self.stopped.clear()
        try:
            if self.producer is not None:
                self.producer.flush(timeout=12)
                self._check_log()
        finally:
            if self.consumer is not None:
                self.consumer.close(autocommit=False)
            if self.producer is not None:
                self.producer.close(timeout=2)

    # -- traffic -------------------------------------------------------------------------------
    @rule(n=st.integers(1, 12))
    def produce(self, n: int) -> None:
        futures = []
        for _ in range(n):
            value = b"%d-%06d" % (self.n, self.seq)
            partition = self.seq % PARTITIONS
            self.seq += 1
            futures.append(
                (partition, value, self.producer.send(self.topic, value=value, partition=partition))
            )
        self.producer.flush(timeout=12)
        for partition, value, fut in futures:
            try:
                md = fut.get(timeout=0.1)
            except KafkaError:  # the client gave up: the record's fate is unknown
                self.failed.add(value)
                continue
            assert md.partition == partition
            self.acked[partition].append(value)

    @rule()
    def consume(self) -> None:
        consumer = self._consumer()
        batches: list[Any] = []
        failure: list[BaseException] = []

        def poll() -> None:
            try:
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    got = consumer.poll(timeout_ms=100)
                    batches.append(got)
                    if not got and (self.consumed or any(batches)):
                        break
            except BaseException as exc:  # handed back to the test thread below
                failure.append(exc)

        worker = threading.Thread(target=poll, daemon=True)
        worker.start()
        worker.join(CLIENT_STUCK_AFTER)
        if worker.is_alive():
            # kafka-python 3.0.12 can wedge inside poll(): its IO-thread waiter
            # never wakes although the proxy is idle and answering (seen once in
            # ~250 deep-profile examples). That is the client's bug, not ours:
            # abandon this consumer and go on with a fresh one in the same group.
            self.consumer = None
            self.wedged_consumers += 1
            return
        if failure:
            raise failure[0]
        for got in batches:
            for tp, records in got.items():
                self.consumed[tp.partition].extend((r.offset, r.value) for r in records)

    # -- faults ---------------------------------------------------------------------------------
    def _fault(self, **spec: Any) -> str:
        self.faults += 1
        name = f"f{self.n}-{self.faults}-{next(iter(spec['action']))}"
        spec.setdefault("schedule", {"limit": 1})
        rig = self.rig
        rig.run(lambda: _engine(rig).add(FaultSpec(name=name, **spec)))
        return name

    @rule(kind=st.sampled_from(sorted(TOXICS)))
    def add_toxic(self, kind: str) -> None:
        """A Toxiproxy stream toxic on every listener (bootstrap and brokers), live."""
        self.faults += 1
        name = f"t{self.n}-{self.faults}-{kind}"
        rig = self.rig
        rig.run(lambda: _engine(rig).add(FaultSpec(name=name, toxic=TOXICS[kind])))
        self.toxics.append(name)

    @precondition(lambda self: bool(self.toxics))
    @rule()
    def remove_toxic(self) -> None:
        name = self.toxics.pop(0)
        rig = self.rig
        rig.run(lambda: _engine(rig).remove(name))

    @rule(which=st.sampled_from(ABORTS))
    def kafka_abort(self, which: tuple[str, str]) -> None:
        api, error = which
        name = self._fault(
            match={"protocol": "kafka", "api": api}, action={"abort": {"error": error}}
        )
        self.aborts[name] = which

    @rule(direction=st.sampled_from(["upstream", "downstream"]))
    def drop_produce(self, direction: str) -> None:
        self._fault(
            match={"protocol": "kafka", "api": "Produce", "direction": direction},
            action={"drop": {}},
        )

    @rule(how=st.sampled_from(CUTS), api=st.sampled_from(["Produce", "Fetch", "Metadata"]))
    def cut_connection(self, how: str, api: str) -> None:
        self._fault(match={"protocol": "kafka", "api": api}, action={how: {}})

    @rule()
    def delay(self) -> None:
        self._fault(
            match={"protocol": "kafka"},
            action={"delay": {"uniform": ["5ms", "50ms"]}},
            schedule={"limit": 5},
        )

    @precondition(lambda self: len(self.stopped) < BROKERS - 1)
    @rule(node=st.integers(0, BROKERS - 1))
    def stop_broker(self, node: int) -> None:
        if node in self.stopped:
            return
        rig = self.rig
        rig.call(lambda: rig.cluster.stop_broker(node))  # type: ignore[union-attr]
        self.stopped.append(node)

    @precondition(lambda self: bool(self.stopped))
    @rule()
    def start_broker(self) -> None:
        node = self.stopped.pop(0)
        rig = self.rig
        rig.call(lambda: rig.cluster.start_broker(node))  # type: ignore[union-attr]

    @rule(partition=st.integers(0, PARTITIONS - 1), node=st.integers(0, BROKERS - 1))
    def move_leader(self, partition: int, node: int) -> None:
        if node in self.stopped:
            return
        rig = self.rig
        rig.run(lambda: rig.cluster.move_leader(self.topic, partition, node))  # type: ignore[union-attr]

    # -- invariants -----------------------------------------------------------------------------
    def _log(self) -> dict[int, list[tuple[int, bytes]]]:
        rig = self.rig

        def read() -> dict[int, list[tuple[int, bytes]]]:
            return {
                p: [(r.offset, r.value) for r in rig.cluster.records(self.topic, p)]  # type: ignore[union-attr]
                for p in range(PARTITIONS)
            }

        return rig.run(read)

    def _check_log(self) -> None:
        log = self._log()
        for p in range(PARTITIONS):
            values = [v for _, v in log[p]]
            assert len(values) == len(set(values)), f"partition {p}: a record was written twice"
            acked = self.acked.get(p, [])
            placed = [v for v in values if v in set(acked)]
            assert placed == acked, f"partition {p}: acknowledged records lost or reordered"
            strays = set(values) - set(acked) - self.failed
            assert not strays, f"partition {p}: records nobody sent: {sorted(strays)[:3]}"

    @invariant()
    def acknowledged_records_are_in_the_log_once_in_order(self) -> None:
        if self.producer is not None:
            self._check_log()

    @invariant()
    def consumer_sees_only_the_log_in_order(self) -> None:
        if not self.consumed:
            return
        log = self._log()
        for p, seen in self.consumed.items():
            # Redelivery after a rebalance or a lost commit is allowed (at least
            # once); a record at an offset the log does not hold is not.
            by_offset = dict(log[p])
            for offset, value in seen:
                assert by_offset.get(offset) == value, f"partition {p} offset {offset}"

    @invariant()
    def proxy_keeps_serving(self) -> None:
        _metadata_roundtrip(self.rig.bootstrap)

    @invariant()
    def proxy_counts_equal_what_clients_saw(self) -> None:
        rig = self.rig
        metrics = rig.app.kafka.metrics

        def counts() -> tuple[float, float, dict[tuple[str, str], float]]:
            prod = sum(v for k, v in metrics.produce_records.values.items() if k[1] == self.topic)
            fetch = sum(v for k, v in metrics.fetch_records.values.items() if k[1] == self.topic)
            errs: dict[tuple[str, str], float] = defaultdict(float)
            for k, v in metrics.errors.values.items():
                errs[(k[1], k[2])] += v  # summed over listeners (bootstrap and brokers)
            return prod, fetch, errs

        # A response the proxy has passed on may still be on its way into the
        # client (its IO thread runs on its own), so equality is awaited briefly.
        deadline = time.monotonic() + SETTLE
        while True:
            produced, fetched, errors = rig.run(counts)
            seen = _tap.counts(self.topic)
            if (produced, fetched) == seen or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (produced, fetched) == seen, (
            f"proxy counted (acknowledged, fetched) = {(produced, fetched)}, "
            f"the clients were told {seen}"
        )
        acked = sum(len(v) for v in self.acked.values())
        consumed = sum(len(v) for v in self.consumed.values())
        assert produced >= acked, (produced, acked)
        assert fetched >= consumed, (fetched, consumed)
        injected: dict[tuple[str, str], int] = defaultdict(int)
        engine = _engine(rig)
        for name, (api, error) in self.aborts.items():
            fault = rig.run(lambda name=name: engine.faults.get(name))
            if fault is not None:
                injected[(api, error)] += fault.injected
        for key, n in injected.items():
            if key[0] != "Metadata":  # a Metadata for all topics carries no error
                assert errors.get(key, 0) >= n, (key, errors.get(key), n)


KafkaUnderFaults.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=6, deadline=None
)
TestKafkaUnderFaults = KafkaUnderFaults.TestCase
