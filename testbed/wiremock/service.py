"""The fake HTTP service in WireMock's format: one `WireMockEngine` behind an h11 server.

The engine (engine.py) decides every answer from the request alone; this
module is the socket side: HTTP/1.1 framing (keep-alive, content-length and
chunked bodies, HEAD), the delays and faults WireMock simulates, the admin API
under ``/__admin/`` (admin.py) and the testbed's journal.

Faults are done the way WireMock's Jetty does them, at the socket, because a
client's retry logic is what they test and it reacts to what it sees on the
wire: ``CONNECTION_RESET_BY_PEER`` closes with SO_LINGER 0 (the peer reads a
RST), ``EMPTY_RESPONSE`` closes having sent nothing, ``MALFORMED_RESPONSE_CHUNK``
sends a 200 head announcing chunked framing then bytes that are not a chunk,
and ``RANDOM_DATA_THEN_CLOSE`` sends bytes that are not HTTP then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import h11

from ..journal import HostileAnswer, HttpRequest, Journal
from .admin import AdminApi
from .engine import HttpIn, HttpOut, WireMockEngine
from .hostile import HttpHostile, HttpPlan

#: Reason phrases as Jetty writes them (h11 would send none; some clients mind).
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
READ_SIZE = 64 * 1024
#: A request body above this is answered 413 and the connection closed:
#: the fake holds whole bodies in memory to match them.
MAX_REQUEST_BODY = 16 * 1024 * 1024
#: Near misses written into a journal entry (the admin API has them all).
JOURNAL_NEAR_MISSES = 3
#: Header values the testbed's journal never shows (WireMock's own journal,
#: like WireMock's, keeps them: it is the user's fake of the user's service).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
REDACTED = "[redacted]"
#: What WireMock writes for the garbage faults (its Jetty fault injector's bytes).
GARBAGE = b"lskdu018973t09sylgasjkfg1][]'./.sdlv"


class WireMockService:
    """`async with WireMockService(engine, "api") as svc:` then HTTP/1.1 to `svc.address`."""

    def __init__(
        self,
        engine: WireMockEngine,
        name: str = "wiremock",
        host: str = "127.0.0.1",
        port: int = 0,
        journal: Journal | None = None,
        hostile: HttpHostile | None = None,
    ) -> None:
        self.engine = engine
        #: the scenario's ``http.hostile`` policy (hostile.py), None for none
        self.hostile = hostile
        self.name = name
        self.host = host
        self.port = port
        #: the testbed's journal, when there is one
        self.journal = journal
        self.admin = AdminApi(self)
        #: WireMock's global fixedDelay (POST /__admin/settings), in seconds
        self.global_delay_s = 0.0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.admin.bind(self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> WireMockService:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await _Connection(self, reader, writer).serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    # -- the journal -------------------------------------------------------------
    def record_hostile(self, req: HttpIn, plan: HttpPlan, answer: bytes, client: str) -> None:
        if self.journal is None or self.hostile is None:
            return
        answer_hex, answer_len, truncated = HostileAnswer.hex_of(answer)
        self.journal.record(
            HostileAnswer(
                service=self.name,
                target="http",
                operation=f"{req.method} {urlsplit(req.url).path}",
                peer=client,
                seed=self.hostile.seed,
                index=plan.index,
                edits=tuple(plan.edits),
                metadata=journal_headers(req.headers),
                answer_hex=answer_hex,
                answer_len=answer_len,
                truncated=truncated,
            )
        )

    def record(self, req: HttpIn, out: HttpOut) -> None:
        if self.journal is None:
            return
        parts = urlsplit(req.url)
        near: tuple[str, ...] = ()
        if not out.matched:
            near = tuple(near_miss_lines(self.engine, req)[:JOURNAL_NEAR_MISSES])
        self.journal.record(
            HttpRequest(
                service=self.name,
                matched=out.matched,
                stub=out.mapping_id,
                near_misses=near,
                method=req.method,
                path=parts.path,
                url=req.url,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=journal_headers(req.headers),
                body=req.body.decode("utf-8", "replace"),
                status=0 if out.fault else out.status,
            )
        )


def journal_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names, repeated headers joined with ", ", secrets redacted."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = REDACTED if key in SECRET_HEADERS else value
        out[key] = f"{out[key]}, {shown}" if key in out else shown
    return out


def near_miss_lines(engine: WireMockEngine, req: HttpIn) -> list[str]:
    """The engine's near misses for `req` as one line each, closest first."""
    headers: dict[str, list[str]] = {}
    for name, value in req.headers:
        headers.setdefault(name, []).append(value)
    logged = {
        "url": req.url,
        "absoluteUrl": req.absolute_url,
        "method": req.method,
        "headers": headers,
        "body": req.body.decode("utf-8", "replace"),
    }
    found = engine.near_misses_for_request(logged)
    lines = []
    for miss in found.get("nearMisses", []):
        stub = miss.get("stubMapping") or {}
        label = stub.get("name") or stub.get("id") or stub.get("uuid") or "?"
        request = stub.get("request") or {}
        what = " ".join(
            str(request[k])
            for k in ("method", "url", "urlPath", "urlPattern", "urlPathPattern")
            if k in request
        )
        distance = (miss.get("matchResult") or {}).get("distance")
        dist = f" distance {distance:.2f}" if isinstance(distance, int | float) else ""
        lines.append(f"{label} ({what}){dist}".strip())
    return lines


class _Connection:
    """One client connection: an h11 server loop."""

    def __init__(
        self, svc: WireMockService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.svc = svc
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        peer = writer.get_extra_info("peername")
        self.client = peer[0] if isinstance(peer, tuple) else ""

    async def _event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            self.conn.receive_data(data)  # b"" is EOF

    def _send(self, event: object, sent: bytearray | None = None) -> None:
        data = self.conn.send(event)  # type: ignore[arg-type]
        if data:
            self.writer.write(data)
            if sent is not None:
                sent += data

    async def serve(self) -> None:
        while True:
            try:
                event = await self._event()
            except h11.RemoteProtocolError as e:
                await self._simple(e.error_status_hint, b"bad request\n")
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            assert isinstance(event, h11.Request), event
            req = await self._read_request(event)
            if req is None:
                return
            if _is_admin(req.url):
                reply = self.svc.admin.handle(req)
                await self._respond(req, reply.status, reply.headers, reply.body)
            else:
                out = self.svc.engine.handle(req)
                self.svc.record(req, out)
                delay = out.delay_s + self.svc.global_delay_s
                if delay > 0:
                    await asyncio.sleep(delay)  # the simulated latency itself
                if out.fault is not None:
                    await self._fault(out.fault, _wants_close(req))
                    return
                headers = list(out.headers)
                if out.mapping_id is not None and not _has(headers, "matched-stub-id"):
                    headers.append(("Matched-Stub-Id", out.mapping_id))
                plan = self._plan(req, headers)
                try:
                    if plan is None:
                        await self._respond(req, out.status, headers, out.body, out.status_message)
                    else:
                        await self._respond_hostile(req, plan, out, headers)
                except h11.LocalProtocolError as e:
                    # h11 checks the head before a byte is sent: a 1xx status, a
                    # header value with a line break (a template's output)...
                    await self._simple(
                        500, f"the stub's answer is not valid HTTP/1.1: {e}\n".encode()
                    )
                    return
            await self.writer.drain()
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE:
                return
            self.conn.start_next_cycle()

    async def _read_request(self, head: h11.Request) -> HttpIn | None:
        body = bytearray()
        declared = _content_length(head)
        if declared is not None and declared > MAX_REQUEST_BODY:
            # refused before a byte of it is read (a client waiting for
            # 100-continue never sends it)
            await self._simple(413, b"request body over %d bytes\n" % MAX_REQUEST_BODY)
            return None
        while True:
            if self.conn.client_is_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=[]))
                await self.writer.drain()
            try:
                event = await self._event()
            except h11.RemoteProtocolError as e:
                await self._simple(e.error_status_hint, b"bad request\n")
                return None
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_REQUEST_BODY:
                    await self._simple(413, b"request body over %d bytes\n" % MAX_REQUEST_BODY)
                    return None
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return None  # closed mid-body
        # raw_items: the names as the client wrote them, as WireMock's journal shows them
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers.raw_items()]
        target = head.target.decode("latin-1")
        host = next((v for k, v in headers if k.lower() == "host"), "")
        host = host or f"{self.svc.host}:{self.svc.port}"
        return HttpIn(
            method=head.method.decode("ascii"),
            url=target,
            headers=headers,
            body=bytes(body),
            client=self.client,
            absolute_url=target if "://" in target else f"http://{host}{target}",
        )

    def _plan(self, req: HttpIn, headers: list[tuple[str, str]]) -> HttpPlan | None:
        if self.svc.hostile is None:
            return None
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        return self.svc.hostile.plan(urlsplit(req.url).path, content_type)

    async def _respond_hostile(
        self, req: HttpIn, plan: HttpPlan, out: HttpOut, headers: list[tuple[str, str]]
    ) -> None:
        """The stub's answer changed as `plan` says, journaled with the bytes sent."""
        status = plan.status if plan.status is not None else out.status
        reason = plan.reason if plan.reason is not None else out.status_message
        if plan.status is not None:
            reason = None  # the new status's own phrase
        extra = [(k, v.encode("latin-1")) for k, v in plan.headers]  # h11 sends str as ASCII
        headers = [*headers, *extra, plan.tag]  # type: ignore[list-item]
        body = b"" if plan.empty else out.body
        sent = bytearray()
        if plan.chunk_sizes:
            await self._respond_chunked(req, status, headers, body, plan, sent)
        else:
            await self._respond(req, status, headers, body, reason, sent)
        self.svc.record_hostile(req, plan, bytes(sent), self.client)

    async def _respond_chunked(
        self,
        req: HttpIn,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        plan: HttpPlan,
        sent: bytearray,
    ) -> None:
        out = [
            (k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")
        ]
        bodiless = req.method == "HEAD" or status in (204, 304)
        if not bodiless:
            out.append(("Transfer-Encoding", "chunked"))
        phrase = _PHRASES.get(status, "").encode("latin-1", "replace")
        self._send(h11.Response(status_code=status, headers=out, reason=phrase), sent)
        if not bodiless:
            for piece in plan.chunks(body):
                self._send(h11.Data(data=piece), sent)
            # trailers go only on chunked framing: an HTTP/1.0 client reads to the close
            chunked = self.conn.their_http_version == b"1.1"
            self._send(h11.EndOfMessage(headers=plan.trailers if chunked else []), sent)
        else:
            self._send(h11.EndOfMessage(), sent)

    async def _respond(
        self,
        req: HttpIn,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        reason: str | None = None,
        sent: bytearray | None = None,
    ) -> None:
        out = [
            (k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")
        ]
        bodiless = req.method == "HEAD" or status in (204, 304) or status < 200
        if status != 204 and status >= 200:
            out.append(("Content-Length", str(len(body))))
        phrase = reason if reason is not None else _PHRASES.get(status, "")
        raw_phrase = phrase.encode("latin-1", "replace")
        self._send(h11.Response(status_code=status, headers=out, reason=raw_phrase), sent)
        if not bodiless and body:
            self._send(h11.Data(data=body), sent)
        self._send(h11.EndOfMessage(), sent)

    async def _fault(self, fault: str, closing: bool) -> None:
        """Break the connection as `fault` says; the caller closes it after.

        A malformed chunk is framed as Jetty frames it: a client that keeps the
        connection alive is promised chunks, one that sent ``Connection: close``
        a body read until the close (real WireMock 3.13 on both, byte for byte).
        """
        sock = self.writer.get_extra_info("socket")
        if fault == "CONNECTION_RESET_BY_PEER":
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
            return
        if fault == "MALFORMED_RESPONSE_CHUNK":
            framing = b"Connection: close" if closing else b"Transfer-Encoding: chunked"
            self.writer.write(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n\r\n" + GARBAGE)
        elif fault == "RANDOM_DATA_THEN_CLOSE":
            self.writer.write(GARBAGE)
        # EMPTY_RESPONSE: nothing at all
        await self.writer.drain()

    async def _simple(self, status: int, body: bytes) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(h11.LocalProtocolError):
            self._send(
                h11.Response(
                    status_code=status,
                    headers=[
                        ("Content-Type", "text/plain"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                    ],
                )
            )
            self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
            await self.writer.drain()


def _wants_close(req: HttpIn) -> bool:
    tokens = ",".join(v for k, v in req.headers if k.lower() == "connection")
    return "close" in [t.strip().lower() for t in tokens.split(",")]


def _content_length(head: h11.Request) -> int | None:
    for name, value in head.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is digits
    return None


def _is_admin(target: str) -> bool:
    path = urlsplit(target).path if "://" in target else target.partition("?")[0]
    return path == "/__admin" or path.startswith("/__admin/")


def _has(headers: list[tuple[str, str]], name: str) -> bool:
    return any(k.lower() == name for k, _ in headers)
