"""One listener's recording: a bounded queue, drained by a writer task.

`submit` runs on the data path: it only appends to the queue, and a full
queue drops the recording and counts it
(``protoproxy_record_dropped_total{listener,reason="queue_full"}``). The
writer task takes what is queued, decodes it and writes the files in a
worker thread, so neither protobuf decoding nor disk waits stall the event
loop. Identical calls (same method and request, same HTTP request) are
written once; the first answer wins. Files and bytes are capped per listener
(``record.max_files``, ``record.max_bytes``); what does not fit is dropped
and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections import Counter as Tally
from pathlib import Path
from typing import TYPE_CHECKING

from . import grpc_stubs, kafka_seeds, scenario_file, wiremock
from .model import GrpcCall, HttpExchange, ProduceRequest, Recording
from .payloads import TooLarge
from .redact import Redactor
from .schema import Schema, SchemaError, compile_protos, reflect

if TYPE_CHECKING:
    from ..config import Record
    from ..observe.stats import Counter

log = logging.getLogger("protoproxy.record")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _safe(name: str, limit: int = 80) -> str:
    return (_UNSAFE.sub("_", name).lstrip(".") or "_")[:limit]


class RecordWriter:
    """What the listeners recording into one ``record.dir`` write there.

    `listener` names the folder's first listener (in the scenario's comment,
    the HTTP service's name and the log); drops are counted per listener.
    """

    def __init__(
        self,
        listener: str,
        config: Record,
        dropped: Counter,
        reflect_from: str | None = None,
        ports: dict[str, int] | None = None,
    ) -> None:
        self.listener = listener
        self.config = config
        self.root = Path(config.dir)
        self.max_exchange_bytes = int(config.max_exchange_bytes)
        self.redactor = Redactor(config.keep_headers)
        self.dropped = dropped
        self.reflect_from = reflect_from
        self.ports = ports or {}  # "grpc"/"http": the recording listeners' ports
        self.queue: asyncio.Queue[tuple[Recording, str]] = asyncio.Queue(config.queue)
        self._task: asyncio.Task[None] | None = None
        self.files = 0
        self.bytes = 0
        self.written = 0  # recordings written (a stub, a mapping, a seed line)
        self._seen: set[str] = set()
        self._topic_files: set[str] = set()
        self._partitions: dict[str, int] = {}
        self._service_sets: set[str] = set()
        self._schema: Schema | None = None
        self._schema_tried = False
        self._closed = False

    # -- the data path --------------------------------------------------------------
    def submit(self, item: Recording, listener: str) -> None:
        if self._closed:
            return
        try:
            self.queue.put_nowait((item, listener))
        except asyncio.QueueFull:
            self.drop("queue_full", listener)
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def drop(self, reason: str, listener: str, n: int = 1) -> None:
        self.dropped.inc((listener, reason), n)

    # -- the writer task ----------------------------------------------------------------
    async def _run(self) -> None:
        queue = self.queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 256:
                batch.append(queue.get_nowait())
            try:
                if not self._schema_tried and any(isinstance(i, GrpcCall) for i, _ in batch):
                    await self._load_schema()
                drops = await asyncio.to_thread(self._write_batch, batch)
                for (listener, reason), n in drops.items():
                    self.drop(reason, listener, n)
            except OSError as exc:
                log.error("record %s: cannot write into %s: %s", self.listener, self.root, exc)
                for _, listener in batch:
                    self.drop("write_error", listener)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _load_schema(self) -> None:
        self._schema_tried = True
        sch = self.config.schema_
        if sch is None:
            return
        try:
            if sch.reflect:
                if self.reflect_from is None:
                    raise SchemaError("reflect: true needs an upstream to ask")
                data = await reflect(self.reflect_from)
                source = f"reflection from {self.reflect_from}"
            elif sch.descriptor_set is not None:
                data = await asyncio.to_thread(Path(sch.descriptor_set).read_bytes)
                source = str(sch.descriptor_set)
            else:
                data = await asyncio.to_thread(compile_protos, sch.protos, sch.import_paths)
                source = ", ".join(map(str, sch.protos))
            self._schema = Schema(data, source)
        except (SchemaError, OSError) as exc:
            log.error(
                "record %s: no schema, messages are recorded as base64: %s", self.listener, exc
            )

    async def flush(self) -> None:
        """Wait until everything submitted so far is written (or the writer died).

        A bug that ends the writer task must not hang the App's stop: the wait
        ends with the task too, and its exception is logged.
        """
        task = self._task
        if task is None:
            return
        joined = asyncio.ensure_future(self.queue.join())
        await asyncio.wait({joined, task}, return_when=asyncio.FIRST_COMPLETED)
        if not joined.done():
            joined.cancel()
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "record %s: the writer stopped; recordings since are lost",
                    self.root,
                    exc_info=task.exception(),
                )

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await self.flush()
            task, self._task = self._task, None
            if not task.done():  # a dead one was logged by flush
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- files (in the worker thread) ------------------------------------------------------
    def _write_batch(self, batch: list[tuple[Recording, str]]) -> Tally[tuple[str, str]]:
        """Write a batch; returns the drops by (listener, reason)."""
        drops: Tally[tuple[str, str]] = Tally()
        changed = False
        for item, listener in batch:
            mine: Tally[str] = Tally()
            if isinstance(item, GrpcCall):
                changed |= self._grpc(item, mine)
            elif isinstance(item, HttpExchange):
                changed |= self._http(item, mine)
            elif isinstance(item, ProduceRequest):
                changed |= self._kafka(item, mine)
            for reason, n in mine.items():
                drops[(listener, reason)] += n
        if changed:
            self.root.mkdir(parents=True, exist_ok=True)
            scenario_file.write(self.root, self.listener, self._partitions, self.ports)
        return drops

    def _fits(self, size: int, new_files: int, drops: Tally[str]) -> bool:
        if self.files + new_files > self.config.max_files:
            drops["max_files"] += 1
            return False
        if self.bytes + size > self.config.max_bytes:
            drops["max_bytes"] += 1
            return False
        return True

    def _put(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.files += 1
        self.bytes += len(data)

    def _grpc(self, call: GrpcCall, drops: Tally[str]) -> bool:
        limit = self.max_exchange_bytes
        try:
            requests = grpc_stubs.decoded_messages(
                call.requests, grpc_stubs.request_encoding(call), limit
            )
            responses = grpc_stubs.decoded_messages(
                call.responses, grpc_stubs.response_encoding(call), limit
            )
        except TooLarge:
            drops["too_large"] += 1
            return False
        if requests is None or responses is None:
            drops["compression"] += 1
            return False
        key = grpc_stubs.call_key(call, requests)
        if key in self._seen:
            return False
        stub = grpc_stubs.build_stub(call, requests, responses, self._schema, self.redactor)
        data = json.dumps(stub, indent=2, ensure_ascii=False).encode() + b"\n"
        folder = self.root / "grpc" / _safe(call.service)
        set_bytes = None
        if self._schema is not None and call.service not in self._service_sets:
            set_bytes = self._schema.set_for(call.service)
        extra = len(set_bytes) if set_bytes is not None else 0
        if not self._fits(len(data) + extra, 1 + (set_bytes is not None), drops):
            return False
        self._seen.add(key)
        if set_bytes is not None:
            self._service_sets.add(call.service)
            self._put(folder / "descriptor_set.binpb", set_bytes)
        self._put(folder / f"{_safe(call.method, 60)}-{key[:12]}.json", data)
        self.written += 1
        return True

    def _http(self, ex: HttpExchange, drops: Tally[str]) -> bool:
        key = wiremock.exchange_key(ex)
        if key in self._seen:
            return False
        name = f"{_safe(ex.method, 10)}-{_safe(ex.url.split('?', 1)[0].strip('/'), 40)}-{key[:12]}"
        mapping, body = wiremock.build_mapping(
            ex, self.redactor, int(self.config.inline_body_bytes), f"{name}.body"
        )
        data = json.dumps(mapping, indent=2, ensure_ascii=False).encode() + b"\n"
        size = len(data) + (len(body) if body is not None else 0)
        if not self._fits(size, 1 + (body is not None), drops):
            return False
        self._seen.add(key)
        http = self.root / "http"
        if body is not None:
            self._put(http / "__files" / f"{name}.body", body)
        self._put(http / "mappings" / f"{name}.json", data)
        self.written += 1
        return True

    def _kafka(self, req: ProduceRequest, drops: Tally[str]) -> bool:
        try:
            lines = list(kafka_seeds.produce_lines(req, self.redactor, self.max_exchange_bytes))
        except kafka_seeds.BadProduce as exc:
            log.warning("record %s: a Produce not recorded: %s", self.root, exc)
            drops["undecodable"] += 1
            return False
        changed = False
        by_topic: dict[str, list[str]] = {}
        for topic, line in lines:
            by_topic.setdefault(topic, []).append(line)
        for topic, topic_lines in by_topic.items():
            path = self.root / "kafka" / f"{_safe(topic, 200)}.jsonl"
            new_file = topic not in self._topic_files
            text = "".join(f"{line}\n" for line in topic_lines).encode()
            if not self._fits(len(text), int(new_file), drops):
                continue
            if new_file:
                self._topic_files.add(topic)
                self.files += 1
                self._learn_partitions(topic, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(text)
            self.bytes += len(text)
            for line in topic_lines:
                p = json.loads(line)["partition"]
                if p + 1 > self._partitions.get(topic, 0):
                    self._partitions[topic] = p + 1
            self.written += len(topic_lines)
            changed = True
        return changed

    def _learn_partitions(self, topic: str, path: Path) -> None:
        """A topic file from an earlier run: its partitions count in the scenario too."""
        if not path.is_file():
            return
        with path.open("rb") as f:
            for raw in f:
                try:
                    p = int(json.loads(raw).get("partition", 0))
                except (ValueError, TypeError, AttributeError):
                    continue
                if p + 1 > self._partitions.get(topic, 0):
                    self._partitions[topic] = p + 1
