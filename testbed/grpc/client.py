"""Client helpers: make any of the four calls and report what the client saw.

Tests and the testbed want the outcome of a call as data (responses, status,
details, metadata), not as an exception to catch, so both clients here turn
RpcError into a CallResult. Responses received before an error are kept: a
stream that fails after N messages shows those N messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import grpc
from grpc import aio

from .behaviour import Behaviour
from .names import method_name, method_path
from .protos import testbed_pb2 as pb
from .protos import testbed_pb2_grpc as pb_grpc

MAX_MESSAGE = 16 * 1024 * 1024

MetadataPairs = tuple[tuple[str, str | bytes], ...]


@dataclass(slots=True)
class CallResult:
    method: str  # full path
    code: grpc.StatusCode
    details: str
    responses: list[pb.Response] = field(default_factory=list)
    initial_metadata: MetadataPairs = ()
    trailing_metadata: MetadataPairs = ()
    elapsed: float = 0.0  # seconds, for display; tests must not assert on it

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK

    def trailer(self, key: str) -> str | bytes | None:
        """The first trailing metadata value for `key`, or None."""
        for k, v in self.trailing_metadata:
            if k == key:
                return v
        return None


def make_request(
    behaviour: Behaviour | None = None, *, payload: bytes = b"", tag: str = ""
) -> pb.Request:
    request = pb.Request(payload=payload, tag=tag)
    if behaviour is not None:
        request.behaviour.CopyFrom(behaviour.to_proto())
    return request


def make_requests(
    n: int, behaviour: Behaviour | None = None, *, payload: bytes = b"", tag: str = ""
) -> list[pb.Request]:
    """`n` requests tagged ``tag#1..n``, each carrying `behaviour`.

    ClientStream reads the program from the first request only; Bidi from each.
    """
    return [
        make_request(behaviour, payload=payload, tag=f"{tag}#{i + 1}" if tag else "")
        for i in range(n)
    ]


def _pairs(metadata: Any) -> MetadataPairs:
    return tuple((item[0], item[1]) for item in metadata or ())


def channel_credentials(
    root_certificates: bytes | None = None,
    private_key: bytes | None = None,
    certificate_chain: bytes | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials; no roots means the system trust store."""
    return grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)


def channel_options(server_name: str | None = None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    if server_name is not None:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def _open_channel(
    module: Any,
    address: str,
    credentials: grpc.ChannelCredentials | None,
    server_name: str | None,
) -> Any:
    """h2c when `credentials` is None, TLS otherwise; `module` is grpc or grpc.aio,
    whose channel constructors take the same arguments."""
    options = channel_options(server_name)
    if credentials is None:
        return module.insecure_channel(address, options=options)
    return module.secure_channel(address, credentials, options=options)


def _result(
    name: str,
    started: float,
    responses: list[pb.Response],
    code: grpc.StatusCode,
    details: str | None,
    initial_metadata: Any,
    trailing_metadata: Any,
) -> CallResult:
    return CallResult(
        method=method_path(name),
        code=code,
        details=details or "",
        responses=responses,
        initial_metadata=_pairs(initial_metadata),
        trailing_metadata=_pairs(trailing_metadata),
        elapsed=time.monotonic() - started,
    )


def _finished(name: str, started: float, responses: list[pb.Response], call: Any) -> CallResult:
    """The result of a call whose status is read synchronously: a finished blocking
    call, or an error raised by either client (the error is the call's grpc.Call)."""
    return _result(
        name,
        started,
        responses,
        call.code(),
        call.details(),
        call.initial_metadata(),
        call.trailing_metadata(),
    )


def _requests(
    method: str,
    behaviour: Behaviour | None,
    requests: Sequence[pb.Request] | None,
    n: int,
    payload: bytes,
    tag: str,
) -> list[pb.Request]:
    """Shared argument handling: what to send for a method."""
    if requests is not None:
        return list(requests)
    if method in ("Unary", "ServerStream"):
        return [make_request(behaviour, payload=payload, tag=tag)]
    return make_requests(n, behaviour, payload=payload, tag=tag)


class _Client:
    """A TestService stub on a channel that the client may own (and then closes)."""

    def __init__(self, channel: Any, *, owns_channel: bool = False) -> None:
        self.channel = channel
        self.stub = pb_grpc.TestServiceStub(channel)
        self._owns_channel = owns_channel


class AioClient(_Client):
    """TestService calls over a grpc.aio channel."""

    channel: aio.Channel

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str | None = None,
    ) -> AioClient:
        """h2c when `credentials` is None, TLS otherwise."""
        return cls(_open_channel(aio, address, credentials, server_name), owns_channel=True)

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def call(
        self,
        method: str,
        behaviour: Behaviour | None = None,
        *,
        requests: Sequence[pb.Request] | None = None,
        n: int = 1,
        payload: bytes = b"",
        tag: str = "",
        metadata: Iterable[tuple[str, str | bytes]] = (),
        timeout: float | None = None,
    ) -> CallResult:
        """Make one call of any kind; `n` requests for the client-streaming kinds."""
        name = method_name(method)
        sent = _requests(name, behaviour, requests, n, payload, tag)
        md = tuple(metadata)
        started = time.monotonic()
        responses: list[pb.Response] = []
        rpc: Any
        if name == "Unary":
            rpc = self.stub.Unary(sent[0], metadata=md, timeout=timeout)
        elif name == "ServerStream":
            rpc = self.stub.ServerStream(sent[0], metadata=md, timeout=timeout)
        elif name == "ClientStream":
            rpc = self.stub.ClientStream(iter(sent), metadata=md, timeout=timeout)
        else:
            rpc = self.stub.Bidi(iter(sent), metadata=md, timeout=timeout)
        try:
            if name in ("Unary", "ClientStream"):
                responses.append(await rpc)
            else:
                async for response in rpc:
                    responses.append(response)
        except aio.AioRpcError as err:
            return _finished(name, started, responses, err)
        return _result(
            name,
            started,
            responses,
            await rpc.code(),
            await rpc.details(),
            await rpc.initial_metadata(),
            await rpc.trailing_metadata(),
        )

    async def unary(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return await self.call("Unary", behaviour, **kw)

    async def server_stream(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return await self.call("ServerStream", behaviour, **kw)

    async def client_stream(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return await self.call("ClientStream", behaviour, **kw)

    async def bidi(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return await self.call("Bidi", behaviour, **kw)


class SyncClient(_Client):
    """TestService calls over a blocking grpc channel.

    Blocking calls must not run on the event loop that serves them: from async
    tests, run them with ``asyncio.to_thread``.
    """

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str | None = None,
    ) -> SyncClient:
        return cls(_open_channel(grpc, address, credentials, server_name), owns_channel=True)

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(
        self,
        method: str,
        behaviour: Behaviour | None = None,
        *,
        requests: Sequence[pb.Request] | None = None,
        n: int = 1,
        payload: bytes = b"",
        tag: str = "",
        metadata: Iterable[tuple[str, str | bytes]] = (),
        timeout: float | None = None,
    ) -> CallResult:
        name = method_name(method)
        sent = _requests(name, behaviour, requests, n, payload, tag)
        md = tuple(metadata)
        started = time.monotonic()
        responses: list[pb.Response] = []
        rpc: Any = None
        try:
            if name == "Unary":
                response, rpc = self.stub.Unary.with_call(sent[0], metadata=md, timeout=timeout)
                responses.append(response)
            elif name == "ClientStream":
                response, rpc = self.stub.ClientStream.with_call(
                    iter(sent), metadata=md, timeout=timeout
                )
                responses.append(response)
            else:
                if name == "ServerStream":
                    rpc = self.stub.ServerStream(sent[0], metadata=md, timeout=timeout)
                else:
                    rpc = self.stub.Bidi(iter(sent), metadata=md, timeout=timeout)
                responses.extend(rpc)
        except grpc.RpcError as err:
            rpc = err  # the error object is the grpc.Call of the failed call
        return _finished(name, started, responses, rpc)

    def unary(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return self.call("Unary", behaviour, **kw)

    def server_stream(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return self.call("ServerStream", behaviour, **kw)

    def client_stream(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return self.call("ClientStream", behaviour, **kw)

    def bidi(self, behaviour: Behaviour | None = None, **kw: Any) -> CallResult:
        return self.call("Bidi", behaviour, **kw)
