"""FakeGrpcService: the testbed's gRPC server, on grpcio's aio stack.

grpcio's aio server is C-core underneath, so whatever the proxy relays is
framed, HPACK-encoded and flow-controlled by a real gRPC implementation. The
server also carries the standard health service and server reflection, as
real deployments do, because clients and tools (grpcurl, grpc_health_probe)
probe them through the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .behaviour import Behaviour, StatusLike
from .names import SERVICE, method_name
from .protos import testbed_pb2_grpc as pb_grpc
from .servicer import ServiceState, TestServiceServicer
from .stats import MethodStats

MAX_MESSAGE = 16 * 1024 * 1024

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM certificate chain and key; `client_ca` turns on mutual TLS."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(
        cls, cert: str | Path, key: str | Path, client_ca: str | Path | None = None
    ) -> ServerTls:
        return cls(
            Path(cert).read_bytes(),
            Path(key).read_bytes(),
            Path(client_ca).read_bytes() if client_ca is not None else None,
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


class FakeGrpcService:
    """The TestService plus health and reflection, on h2c or TLS.

    Use as ``async with FakeGrpcService() as svc:``; `program`, `reset` and the
    counters are plain methods, safe to call from the event loop the server
    runs on (which is where the handlers run too).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ServerTls | None = None):
        self.host = host
        self.tls = tls
        self._requested_port = port
        self._port: int | None = None
        self._server: aio.Server | None = None
        self._state = ServiceState()
        self._health = health.aio.HealthServicer()

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FakeGrpcService already started")
        server = aio.server(
            options=[
                # Never share a port with another process: a silent second
                # listener on a fixed port makes tests talk to the wrong server.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ]
        )
        pb_grpc.add_TestServiceServicer_to_server(TestServiceServicer(self._state), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        bind = f"{self.host}:{self._requested_port}"
        try:
            if self.tls is None:
                port = server.add_insecure_port(bind)
            else:
                port = server.add_secure_port(bind, self.tls.credentials())
        except RuntimeError as exc:  # grpcio's only signal for a failed bind
            raise OSError(f"gRPC server could not bind {bind}: {exc}") from None
        await server.start()
        await self._health.set("", SERVING)
        await self._health.set(SERVICE, SERVING)
        self._server = server
        self._port = port

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls still running are cancelled after `grace` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- where ------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeGrpcService is not started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port``, ready for grpc.insecure_channel / secure_channel."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- control ------------------------------------------------------------

    def program(
        self,
        method: str,
        *,
        latency: float | None = None,
        interval: float | None = None,
        status: StatusLike | None = None,
        message: str | None = None,
        count: int | None = None,
        size: int | None = None,
        fail_after: int | None = None,
    ) -> Behaviour:
        """Set the default behaviour of `method` ("Unary" or its full path).

        Delays are in seconds. A request's own Behaviour fields still win over
        these. Calling again replaces the method's program; `reset` clears all.
        """
        behaviour = Behaviour.make(
            latency=latency,
            interval=interval,
            status=status,
            message=message,
            count=count,
            size=size,
            fail_after=fail_after,
        )
        self._state.programs[method_name(method)] = behaviour
        return behaviour

    def reset(self) -> None:
        """Forget every program and zero every counter."""
        self._state.reset()

    def stats(self, method: str) -> MethodStats:
        """The live counters of one method (the object updates as calls run)."""
        return self._state.stats[method_name(method)]

    def counters(self) -> dict[str, dict[str, object]]:
        """A JSON-able snapshot of every method's counters, by short name."""
        return {name: stats.as_dict() for name, stats in self._state.stats.items()}

    async def set_serving(self, serving: bool, service: str = SERVICE) -> None:
        """Flip what the health service reports for `service` ("" is the whole server)."""
        await self._health.set(service, SERVING if serving else NOT_SERVING)
