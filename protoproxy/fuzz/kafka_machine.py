"""Stateful Kafka runs: request sequences a client makes, checked against a model.

`protoproxy fuzz kafka` spends part of its budget on a hypothesis
`RuleBasedStateMachine` whose steps are what clients do on one connection:
create a topic, produce a batch of records, fetch from an offset, ask for the
latest offset, commit a group's offset and fetch it back. Every answer is
judged like a single case's (``decodes``, ``correlation``, ``deadline``,
``closed_with_reason``, ``not_a_server_error``), and also against a model of
the partition built from the target's own earlier answers (``model``):

- a Produce of n records answers the partition's next offset, which then grows by n;
- ListOffsets (latest) and a Fetch's high watermark answer that next offset;
- a Fetch from offset o returns records from o on, the ones produced, in order;
- an OffsetFetch answers the offset this run last committed for that group.

The model starts from what the target says when a topic is first used
(Metadata for its partitions, ListOffsets for each partition's end), so a
target that already holds the topic (an earlier example, an earlier run)
is no false alarm. A failing sequence is written as its steps
(``extra.steps``): `--replay` runs them again, model and all, against the
target.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import framing, schema
from protoproxy_codecs.kafka.api_keys import ApiKey

from .driver import Case, Observation, OracleFailure, Target
from .kafka_wire import Connection, jsonable

if TYPE_CHECKING:
    from .kafka import KafkaDriver

_CLIENT = "protoproxy-fuzz-sm"
#: what each step uses: api -> (lowest, highest) version the machine can build
USED: dict[int, tuple[int, int]] = {
    int(ApiKey.CREATE_TOPICS): (2, 4),
    int(ApiKey.METADATA): (1, 8),
    int(ApiKey.PRODUCE): (3, 8),
    int(ApiKey.FETCH): (4, 11),
    int(ApiKey.LIST_OFFSETS): (1, 5),
    int(ApiKey.OFFSET_COMMIT): (2, 7),
    int(ApiKey.OFFSET_FETCH): (1, 5),
}
#: error codes that mean "not here" (another broker leads or coordinates): the
#: model leaves that partition or group alone
ELSEWHERE = frozenset({3, 6, 14, 15, 16})  # UNKNOWN_TOPIC..., NOT_LEADER..., COORDINATOR...
TOPIC_ALREADY_EXISTS = 36
MAX_RECORDS = 5
FETCH_BYTES = 1 << 20


def versions_for(advertised: dict[int, tuple[int, int]]) -> dict[int, int] | None:
    """The highest version of each used API that both sides speak; None if one is missing."""
    out = {}
    for key, (lo, hi) in USED.items():
        theirs = advertised.get(key)
        if theirs is None or theirs[1] < lo or theirs[0] > hi:
            return None
        out[key] = min(hi, theirs[1])
    return out


def _batch(base_timestamp: int, records: list[tuple[bytes | None, bytes]]) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i, (key, value) in enumerate(records):
        builder.append(i, base_timestamp + i, key, value, [])
    return bytes(builder.build())


def _records(raw: bytes | None) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record in a Fetch answer's record set."""
    from kafka.record import MemoryRecords

    if not raw:
        return []
    out = []
    batches = MemoryRecords(bytes(raw))
    while True:
        batch = batches.next_batch()
        if batch is None:
            return out
        out.extend((r.offset, r.key, r.value) for r in batch)


@dataclass
class _Partition:
    #: the next offset (the high watermark) as the model expects it
    end: int
    #: records this run produced, by offset
    values: dict[int, bytes] = field(default_factory=dict)


class KafkaModel:
    """One connection, the model, and the case it writes. Each step method sends
    one request, reads its answer, judges it, and checks the model."""

    def __init__(self, driver: KafkaDriver, via: Target, versions: dict[int, int]) -> None:
        self.driver = driver
        self.versions = versions
        self.conn: Connection = Connection(via, driver.options.deadline_s)
        self.partitions: dict[tuple[str, int], _Partition | None] = {}  # None: led elsewhere
        self.topics: dict[str, int] = {}  # name -> partition count
        self.committed: dict[tuple[str, str, int], int] = {}
        self.case = Case("kafka", "stateful", [], [], extra={"steps": []})
        self.corr = 0
        self.slowest = 0

    # -- one request -------------------------------------------------------------------
    def _call(self, api_key: int, body: dict[str, Any]) -> Any:
        version = self.versions[api_key]
        self.corr += 1
        frame = framing.encode_request(api_key, version, self.corr, _CLIENT, body)
        self.case.wire.append(frame)
        self.case.decoded.append(
            {"api": schema.api_name(api_key), "version": version, "body": jsonable(body)}
        )
        self.case.label = f"stateful {schema.api_name(api_key)} v{version}"
        t0 = time.monotonic_ns()
        slowest = self.driver._exchange(self.conn, [frame], [[api_key, version, self.corr, True]])
        self.slowest = max(self.slowest, slowest, time.monotonic_ns() - t0)
        return self.driver.answers[-1]

    def close(self) -> None:
        self.conn.close()

    # -- what the target holds ---------------------------------------------------------
    def _partition(self, topic: str, index: int) -> _Partition | None:
        key = (topic, index)
        if key not in self.partitions:
            end = self._latest(topic, index)
            self.partitions[key] = None if end is None else _Partition(end)
        return self.partitions[key]

    def _latest(self, topic: str, index: int) -> int | None:
        body = self._call(
            int(ApiKey.LIST_OFFSETS),
            {"replica_id": -1, "topics": [{"name": topic, "partitions": [
                {"partition_index": index, "timestamp": -1}]}]},
        )  # fmt: skip
        part = _only(body.topics, "ListOffsets").partitions
        answer = _only(part, "ListOffsets")
        if answer.error_code in ELSEWHERE:
            return None
        _no_error(answer.error_code, f"ListOffsets {topic}/{index}")
        return int(answer.offset)

    # -- the steps ---------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> None:
        self.case.extra["steps"].append(["create_topic", name, partitions])
        body = self._call(
            int(ApiKey.CREATE_TOPICS),
            {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": -1,
                         "assignments": [], "configs": []}], "timeout_ms": 5000},
        )  # fmt: skip
        answer = _only(body.topics, "CreateTopics")
        if answer.error_code not in (0, TOPIC_ALREADY_EXISTS):
            raise OracleFailure(
                "model",
                f"CreateTopics {name!r} ({partitions} partitions) answered "
                f"{schema.error_name(answer.error_code)}",
            )
        meta = self._call(int(ApiKey.METADATA), {"topics": [{"name": name}]})
        topic = _only(meta.topics, "Metadata")
        _no_error(topic.error_code, f"Metadata {name!r}")
        count = len(topic.partitions)
        if answer.error_code == 0 and count != partitions:
            raise OracleFailure(
                "model",
                f"{name!r} was created with {partitions} partitions; Metadata lists {count}",
            )
        self.topics[name] = count

    def produce(self, topic: str, index: int, records: list[tuple[bytes | None, bytes]]) -> None:
        self.case.extra["steps"].append(
            ["produce", topic, index, [[_hex(k), v.hex()] for k, v in records]]
        )
        index %= self.topics[topic]
        part = self._partition(topic, index)
        body = self._call(
            int(ApiKey.PRODUCE),
            {"transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": topic, "partition_data": [
                    {"index": index, "records": _batch(1_700_000_000_000, records)}]}]},
        )  # fmt: skip
        answer = _only(_only(body.responses, "Produce").partition_responses, "Produce")
        if part is None or answer.error_code in ELSEWHERE:
            return
        _no_error(answer.error_code, f"Produce to {topic}/{index}")
        if answer.base_offset != part.end:
            raise OracleFailure(
                "model",
                f"Produce of {len(records)} to {topic}/{index} answered base offset "
                f"{answer.base_offset}; the partition's end was {part.end}",
            )
        for i, (_key, value) in enumerate(records):
            part.values[part.end + i] = value
        part.end += len(records)

    def latest(self, topic: str, index: int) -> None:
        self.case.extra["steps"].append(["latest", topic, index])
        index %= self.topics[topic]
        part = self._partition(topic, index)
        end = self._latest(topic, index)
        if part is not None and end is not None and end != part.end:
            raise OracleFailure(
                "model", f"ListOffsets latest of {topic}/{index} is {end}; expected {part.end}"
            )

    def fetch(self, topic: str, index: int, back: int) -> None:
        self.case.extra["steps"].append(["fetch", topic, index, back])
        index %= self.topics[topic]
        part = self._partition(topic, index)
        offset = max(0, part.end - back) if part is not None else 0
        body = self._call(
            int(ApiKey.FETCH),
            {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": FETCH_BYTES,
             "isolation_level": 0, "session_id": 0, "session_epoch": -1,
             "topics": [{"topic": topic, "partitions": [
                 {"partition": index, "fetch_offset": offset, "log_start_offset": -1,
                  "partition_max_bytes": FETCH_BYTES, "current_leader_epoch": -1}]}],
             "forgotten_topics_data": [], "rack_id": ""},
        )  # fmt: skip
        answer = _only(_only(body.responses, "Fetch").partitions, "Fetch")
        if part is None or answer.error_code in ELSEWHERE:
            return
        _no_error(answer.error_code, f"Fetch {topic}/{index}@{offset}")
        where = f"Fetch {topic}/{index} from {offset}"
        if answer.high_watermark != part.end:
            raise OracleFailure(
                "model", f"{where}: high watermark {answer.high_watermark}; expected {part.end}"
            )
        try:
            got = [(o, v) for o, _k, v in _records(answer.records) if o >= offset]
        except (ValueError, TypeError, IndexError, DecodeError) as exc:
            raise OracleFailure("decodes", f"{where}: records: {exc}") from None
        want = list(range(offset, part.end))
        if [o for o, _ in got] != want:
            raise OracleFailure("model", f"{where}: offsets {[o for o, _ in got]}; expected {want}")
        for o, value in got:
            if o in part.values and value != part.values[o]:
                raise OracleFailure(
                    "model", f"{where}: offset {o} holds {value!r}, not {part.values[o]!r}"
                )

    def commit(self, group: str, topic: str, index: int, back: int) -> None:
        self.case.extra["steps"].append(["commit", group, topic, index, back])
        index %= self.topics[topic]
        part = self._partition(topic, index)
        offset = max(0, part.end - back) if part is not None else 0
        body = self._call(
            int(ApiKey.OFFSET_COMMIT),
            {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
             "retention_time_ms": -1, "topics": [{"name": topic, "partitions": [
                 {"partition_index": index, "committed_offset": offset,
                  "committed_metadata": ""}]}]},
        )  # fmt: skip
        answer = _only(_only(body.topics, "OffsetCommit").partitions, "OffsetCommit")
        if answer.error_code in ELSEWHERE:
            return
        _no_error(answer.error_code, f"OffsetCommit {group!r} {topic}/{index}@{offset}")
        self.committed[(group, topic, index)] = offset

    def committed_offset(self, group: str, topic: str, index: int) -> None:
        self.case.extra["steps"].append(["committed_offset", group, topic, index])
        index %= self.topics[topic]
        body = self._call(
            int(ApiKey.OFFSET_FETCH),
            {"group_id": group, "topics": [{"name": topic, "partition_indexes": [index]}]},
        )
        if getattr(body, "error_code", 0) in ELSEWHERE:
            return
        answer = _only(_only(body.topics, "OffsetFetch").partitions, "OffsetFetch")
        if answer.error_code in ELSEWHERE:
            return
        _no_error(answer.error_code, f"OffsetFetch {group!r} {topic}/{index}")
        want = self.committed.get((group, topic, index))
        if want is not None and answer.committed_offset != want:
            raise OracleFailure(
                "model",
                f"OffsetFetch {group!r} {topic}/{index} answered {answer.committed_offset}; "
                f"{want} was committed",
            )

    def run(self, steps: list[list[Any]]) -> None:
        """A recorded sequence again (`--replay`)."""
        for name, *args in steps:
            if name == "produce":
                topic, index, pairs = args
                args = [topic, index, [(_unhex(k), bytes.fromhex(v)) for k, v in pairs]]
            getattr(self, name)(*args)


def _hex(key: bytes | None) -> str | None:
    return None if key is None else key.hex()


def _unhex(key: str | None) -> bytes | None:
    return None if key is None else bytes.fromhex(key)


def _only(items: Any, what: str) -> Any:
    items = list(items or ())
    if len(items) != 1:
        raise OracleFailure("model", f"{what} answered {len(items)} entries for one asked")
    return items[0]


def _no_error(code: int, what: str) -> None:
    if code:
        raise OracleFailure("model", f"{what} answered {schema.error_name(code)}")


# -- the machine -----------------------------------------------------------------------------

_NAMES = st.text("abcdefghij", min_size=1, max_size=6)
_VALUES = st.binary(max_size=64)
_RECORD = st.tuples(st.none() | st.binary(max_size=16), _VALUES)


def machine(driver: KafkaDriver, via: Target, versions: dict[int, int]) -> type:
    """A RuleBasedStateMachine class over one fresh connection per run.

    Every run (hypothesis' replays while shrinking included) names its topics
    and groups afresh: the target keeps what earlier runs made, and a run that
    met it would answer differently from the run it replays (hypothesis calls
    that flaky), where a fresh name meets an empty partition every time."""
    runs = itertools.count(1)

    class KafkaSequences(RuleBasedStateMachine):
        topics = Bundle("topics")

        def __init__(self) -> None:
            super().__init__()
            self.model = KafkaModel(driver, via, versions)
            self.case = self.model.case
            self.prefix = f"fuzz-{driver.run_token}-{next(runs)}-"

        @rule(target=topics, name=_NAMES, partitions=st.integers(1, 3))
        def create_topic(self, name: str, partitions: int) -> str:
            self.model.create_topic(self.prefix + name, partitions)
            return self.prefix + name

        @rule(topic=topics, index=st.integers(0, 2), records=st.lists(_RECORD, min_size=1,
              max_size=MAX_RECORDS))  # fmt: skip
        def produce(
            self, topic: str, index: int, records: list[tuple[bytes | None, bytes]]
        ) -> None:
            self.model.produce(topic, index, records)

        @rule(topic=topics, index=st.integers(0, 2), back=st.integers(0, 8))
        def fetch(self, topic: str, index: int, back: int) -> None:
            self.model.fetch(topic, index, back)

        @rule(topic=topics, index=st.integers(0, 2))
        def latest(self, topic: str, index: int) -> None:
            self.model.latest(topic, index)

        @rule(group=_NAMES, topic=topics, index=st.integers(0, 2), back=st.integers(0, 8))
        def commit(self, group: str, topic: str, index: int, back: int) -> None:
            self.model.commit(self.prefix + group, topic, index, back)

        @rule(group=_NAMES, topic=topics, index=st.integers(0, 2))
        def committed_offset(self, group: str, topic: str, index: int) -> None:
            self.model.committed_offset(self.prefix + group, topic, index)

        def teardown(self) -> None:
            self.model.close()

    return KafkaSequences


def replay_steps(driver: KafkaDriver, case: Case, via: Target) -> Observation:
    """`execute` for a stateful case: its steps again, on a new connection."""
    if driver.versions is None:
        raise OracleFailure("model", "the target no longer speaks the APIs the steps use")
    model = KafkaModel(driver, via, driver.versions)
    try:
        model.run(case.extra["steps"])
    finally:
        model.close()
    return Observation(case.label, model.slowest, len(model.case.wire))
