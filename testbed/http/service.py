"""An asyncio HTTP/1.1 server with programmable responses, built on h11.

It is the upstream that proxy tests talk to: keep-alive, pipelining (h11
answers buffered requests in order), HEAD, 204/304, `Expect: 100-continue`,
`Upgrade: echo` (101, then a raw echo tunnel) and CONNECT (200, then an echo
tunnel, or a real relay to the target with `connect="relay"`).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Literal

import h11

from .routes import Handler, Reply, Request, Route, default_reply, pattern

READ_SIZE = 64 * 1024
MAX_REQUEST_BODY = 64 * 1024 * 1024


class FakeHttpService:
    """`async with FakeHttpService() as svc:` then talk HTTP/1.1 to `svc.address`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        connect: Literal["echo", "relay"] = "echo",
    ) -> None:
        self.host = host
        self.port = port
        self.connect = connect
        self.routes: dict[tuple[str, str], Route] = {}
        #: Every request served, in arrival order (for assertions).
        self.requests: list[Request] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- programming ------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        reply: Reply | None = None,
        *,
        handler: Handler | None = None,
        **fields: object,
    ) -> Route:
        """Answer `method path` (method "*" for any) with a Reply, a handler, or Reply fields.

        `svc.route("GET", "/x", status=503, body=b"no", latency=0.2)` is
        shorthand for passing `Reply(status=503, body=b"no", latency=0.2)`.
        """
        if reply is None and handler is None:
            reply = Reply(**fields)  # type: ignore[arg-type]
        r = Route(method.upper(), path, reply, handler)
        self.routes[(r.method, path)] = r
        return r

    # -- lifecycle ----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeHttpService:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- serving ------------------------------------------------------------

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

    async def _reply_for(self, req: Request) -> Reply:
        route = self.routes.get((req.method, req.path)) or self.routes.get(("*", req.path))
        if route is None:
            return await default_reply(req)
        if route.handler is not None:
            return await route.handler(req)
        assert route.reply is not None
        return route.reply


class _Connection:
    """One client connection: an h11 server loop."""

    def __init__(
        self, svc: FakeHttpService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.svc = svc
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER)

    async def _event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            self.conn.receive_data(data)  # b"" is EOF

    def _send(self, event: object) -> None:
        data = self.conn.send(event)  # type: ignore[arg-type]
        if data:
            self.writer.write(data)

    async def serve(self) -> None:
        while True:
            try:
                event = await self._event()
            except h11.RemoteProtocolError as e:
                await self._bad_request(e)
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            assert isinstance(event, h11.Request), event
            req = await self._read_request(event)
            if req is None:
                return
            self.svc.requests.append(req)
            if req.method == "CONNECT":
                await self._tunnel(req, h11.Response(status_code=200, headers=[]))
                return
            if _upgrade_echo(req):
                switch = h11.InformationalResponse(
                    status_code=101, headers=[("upgrade", "echo"), ("connection", "upgrade")]
                )
                await self._tunnel(req, switch)
                return
            await self._respond(req, await self.svc._reply_for(req))
            await self.writer.drain()
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE:
                return
            self.conn.start_next_cycle()

    async def _read_request(self, head: h11.Request) -> Request | None:
        body = bytearray()
        while True:
            if self.conn.client_is_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=[]))
                await self.writer.drain()
            try:
                event = await self._event()
            except h11.RemoteProtocolError as e:
                await self._bad_request(e)
                return None
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_REQUEST_BODY:
                    await self._bad_request(None, 413)
                    return None
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return None  # closed mid-body
        return Request(
            head.method.decode("ascii"),
            head.target.decode("ascii"),
            list(head.headers),
            bytes(body),
            head.http_version.decode("ascii"),
        )

    async def _respond(self, req: Request, reply: Reply) -> None:
        if reply.latency:
            await asyncio.sleep(reply.latency)
        headers = [(k, v) for k, v in reply.headers]
        names = {k.lower() for k, _ in headers}
        bodiless = req.method == "HEAD" or reply.status in (204, 304) or reply.status < 200
        if reply.chunked and not bodiless:
            headers.append(("transfer-encoding", "chunked"))
        elif reply.status != 204 and "content-length" not in names:
            headers.append(("content-length", str(reply.length)))
        self._send(h11.Response(status_code=reply.status, headers=headers))
        if not bodiless:
            pieces = reply.chunks()
            if pieces is None:
                await self._send_generated(reply.length, reply.chunk_size)
            else:
                for piece in pieces:
                    self._send(h11.Data(data=piece))
                    await self.writer.drain()
        self._send(h11.EndOfMessage())

    async def _send_generated(self, size: int, step: int) -> None:
        step = max(step, 64 * 1024)
        sent = 0
        while sent < size:
            n = min(step, size - sent)
            self._send(h11.Data(data=pattern(sent, n)))
            sent += n
            await self.writer.drain()

    async def _tunnel(self, req: Request, answer: h11.Response | h11.InformationalResponse) -> None:
        self._send(answer)
        early, _closed = self.conn.trailing_data
        if self.svc.connect == "relay" and req.method == "CONNECT":
            await self._relay(req.target, bytes(early))
            return
        if early:
            self.writer.write(early)
        while data := await self.reader.read(READ_SIZE):
            self.writer.write(data)
            await self.writer.drain()
        if self.writer.can_write_eof():
            self.writer.write_eof()

    async def _relay(self, target: str, early: bytes) -> None:
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        up_writer.write(early)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(READ_SIZE):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

        try:
            await asyncio.gather(pump(self.reader, up_writer), pump(up_reader, self.writer))
        finally:
            up_writer.close()

    async def _bad_request(self, error: h11.RemoteProtocolError | None, status: int = 400) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        code = error.error_status_hint if error is not None else status
        body = b"bad request\n" if code == 400 else b"rejected\n"
        with contextlib.suppress(h11.LocalProtocolError):
            self._send(
                h11.Response(
                    status_code=code,
                    headers=[("content-length", str(len(body))), ("connection", "close")],
                )
            )
            self._send(h11.Data(data=body))
            self._send(h11.EndOfMessage())
            await self.writer.drain()


def _upgrade_echo(req: Request) -> bool:
    value = req.header(b"upgrade")
    return value is not None and b"echo" in [t.strip().lower() for t in value.split(b",")]
