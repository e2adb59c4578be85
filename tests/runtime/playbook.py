"""Playbooks: drive one real Connection with events, read back what it commanded.

No sockets: the two Sides are the real `Side` class on `Wire` transports that
record what is written, half-closed, closed or aborted. The `Connect`
command is recorded but not executed; the playbook plays the upstream's
arrival itself (`upstream_ready`), so a test decides when it happens. Every
other command the lifecycle table answers with is executed by the real
Connection, and `take()` returns the commands since the last call.
"""

from __future__ import annotations

from typing import Any

from protoproxy.app import App
from protoproxy.config import Config
from protoproxy.connection import Connection
from protoproxy.connection_state import Command, Connect
from protoproxy.listener import ListenerRuntime
from protoproxy.side import Role, Side


class Wire:
    """A transport stand-in: what the proxy wrote to one socket, and how it ended."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.data = bytearray()
        self.eof = False
        self.closing = False
        self.aborted = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.aborted, "write after abort"
        self.data += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0  # written bytes land in `data` at once

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default


class Playbook:
    """One connection on `listener` (a config dict) to one upstream ``u``."""

    def __init__(self, listener: dict[str, Any], upstream: dict[str, Any] | None = None) -> None:
        self.config = Config.model_validate(
            {
                "admin": {"enabled": False},
                "listeners": [{"name": "l", "listen": "127.0.0.1:0", "upstream": "u", **listener}],
                "upstreams": [upstream or {"name": "u", "endpoints": ["127.0.0.1:9"]}],
            }
        )
        self.app = App(self.config)
        self.proxy = self.app.proxy
        self.proxy.accepting = True
        self.listener = ListenerRuntime(self.proxy, self.config.listeners[0])
        self.conn = Connection(self.proxy, self.listener)
        self.client_wire = Wire(("127.0.0.1", 40000))
        self.server_wire = Wire(("127.0.0.1", 9))
        self.client = Side(self.conn, Role.CLIENT)
        self.server: Side | None = None
        self._commands: list[Command] = []
        run = self.conn._run

        def record(commands: list[Command]) -> None:
            self._commands.extend(commands)
            run([c for c in commands if not isinstance(c, Connect)])

        self.conn._run = record  # type: ignore[method-assign]

    def take(self) -> list[Command]:
        """The commands answered since the last call, in order."""
        out, self._commands = self._commands, []
        return out

    # -- events in ------------------------------------------------------------
    def accept(self) -> list[Command]:
        self.client.connection_made(self.client_wire)  # type: ignore[arg-type]
        return self.take()

    def client_sends(self, data: bytes) -> list[Command]:
        self.client.data_received(data)
        return self.take()

    def client_eof(self) -> list[Command]:
        self.client.eof_received()
        return self.take()

    def upstream_ready(self) -> list[Command]:
        """What a successful `Connect` ends in: the server socket arrives."""
        conn = self.conn
        assert Connect() in self._commands or conn.cluster is None
        cluster = conn.listener.route(conn)
        assert cluster is not None
        conn.cluster = cluster
        endpoint = cluster.endpoints[0]
        endpoint.connections += 1
        endpoint.active += 1
        self.server = Side(conn, Role.SERVER)
        self.server.connection_made(self.server_wire)  # type: ignore[arg-type]
        conn.upstream_ready(self.server, endpoint)
        return self.take()

    def server_sends(self, data: bytes) -> list[Command]:
        assert self.server is not None
        self.server.data_received(data)
        return self.take()

    def server_eof(self) -> list[Command]:
        assert self.server is not None
        self.server.eof_received()
        return self.take()

    def sockets_gone(self) -> list[Command]:
        """Both transports report connection_lost (after the close they were told)."""
        for side in (self.client, self.server):
            if side is not None and not side.closed:
                side.connection_lost(None)
        return self.take()
