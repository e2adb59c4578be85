"""What the fake cluster tells the testbed's journal: produced records, commits, group and txn steps.

Produce is the fake's hot path, and a journal entry per record means decoding
every batch (decompressing it, walking its varints). So Produce only keeps a
reference to the stored batch (no copy, no decode) in a bounded queue, and the
batches become `KafkaEvent`s when the journal is read: the queue is a journal
source whose fetch records the decoded entries into the journal itself, in
order, with the time each batch arrived. Other events go through the same queue
(already built) so that the journal's sequence numbers keep the cluster's order.

Bounded as the journal is: at most `journal.limit` batches or `MAX_PENDING_BYTES`
wait; past that the oldest batch is dropped and its records are counted in the
journal's `dropped`.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from typing import NamedTuple

from kafka.record.default_records import DefaultRecordBatch

from testbed.journal import Entry, Journal, KafkaEvent

SERVICE = "kafka"
#: bytes of produced batches waiting to be decoded
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: what a key, value or header that is not printable UTF-8 starts with (then base64)
BINARY_MARKER = "base64:"


class _Produced(NamedTuple):
    at_ns: int
    wall_ns: int
    topic: str
    partition: int
    batch: bytearray
    records: int
    client_id: str | None
    transactional_id: str | None


def as_text(data: bytes | None) -> str | None:
    """UTF-8 text when `data` is printable text, else "base64:" and its base64."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and (
        text.isprintable() or all(c.isprintable() or c in "\t\n\r" for c in text)
    ):
        return text
    return BINARY_MARKER + base64.b64encode(data).decode("ascii")


class KafkaJournal:
    """The cluster's side of the journal (`FakeKafkaCluster.journal`)."""

    def __init__(self, journal: Journal, service: str = SERVICE) -> None:
        self.journal = journal
        self.service = service
        self._pending: deque[_Produced | Entry] = deque()
        self._pending_bytes = 0
        self._lock = threading.Lock()
        journal.add_source(self._drain, self._clear)

    @property
    def pending(self) -> int:
        """Batches and events not yet handed to the journal (they are on its next read)."""
        return len(self._pending)

    def produced(
        self,
        topic: str,
        partition: int,
        batch: bytearray,
        records: int,
        client_id: str | None,
        transactional_id: str | None,
    ) -> None:
        """A batch was stored (offsets already assigned); decoded when the journal is read."""
        item = _Produced(
            time.monotonic_ns(),
            time.time_ns(),
            topic,
            partition,
            batch,
            records,
            client_id,
            transactional_id,
        )
        with self._lock:
            self._pending.append(item)
            self._pending_bytes += len(batch)
            while (
                len(self._pending) > self.journal.limit or self._pending_bytes > MAX_PENDING_BYTES
            ):
                self._drop_oldest()

    def event(
        self,
        operation: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        group: str | None = None,
        client_id: str | None = None,
        transactional_id: str | None = None,
    ) -> None:
        entry = KafkaEvent(
            self.service,
            operation=operation,
            topic=topic,
            partition=partition,
            offset=offset,
            group=group,
            client_id=client_id,
            transactional_id=transactional_id,
        )
        with self._lock:
            self._pending.append(entry)
            while len(self._pending) > self.journal.limit:
                self._drop_oldest()

    def add(self, entry: Entry) -> None:
        """Any other entry (a hostile answer), in the cluster's order."""
        with self._lock:
            self._pending.append(entry)
            while len(self._pending) > self.journal.limit:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        item = self._pending.popleft()
        if isinstance(item, _Produced):
            self._pending_bytes -= len(item.batch)
            self.journal.dropped += item.records
        else:
            self.journal.dropped += 1

    def _clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._pending_bytes = 0

    def _drain(self) -> list[Entry]:
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
        out: list[Entry] = []
        for item in items:
            if isinstance(item, _Produced):
                out.extend(self._decode(item))
            else:
                out.append(item)
        for entry in out:
            self.journal.record(entry)
        return out

    def _decode(self, item: _Produced) -> list[Entry]:
        out: list[Entry] = []
        for rec in DefaultRecordBatch(bytes(item.batch)):
            out.append(
                KafkaEvent(
                    self.service,
                    at_ns=item.at_ns,
                    wall_ns=item.wall_ns,
                    operation="produce",
                    topic=item.topic,
                    partition=item.partition,
                    offset=rec.offset,
                    key=as_text(rec.key),
                    value=as_text(rec.value),
                    headers={k: as_text(v) or "" for k, v in rec.headers},
                    client_id=item.client_id,
                    transactional_id=item.transactional_id,
                )
            )
        return out
