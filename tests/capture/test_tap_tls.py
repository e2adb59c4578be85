"""A tap of a TLS-terminating listener: plaintext legs, marked decrypted, and the key log.

A real TLS client (Python's ssl, trusting a trustme CA) talks through the
proxy, which terminates TLS in front of a plain echo server. The tap comes
from the listener's own `capture:` in the config, with `keylog:`.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from pathlib import Path

import trustme

from tests.peers import ProxyThread, wait_for

from .tshark import _run, streams


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def test_terminated_tls_is_captured_decrypted_with_a_key_log(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    socketserver.ThreadingTCPServer.daemon_threads = True
    echo = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    keylog = tmp_path / "keys.log"
    config = {
        "admin": {"enabled": False},
        "captures": {"dir": str(tmp_path / "taps")},
        "listeners": [
            {
                "name": "tls",
                "listen": "127.0.0.1:0",
                "protocol": "tcp",
                "upstream": "echo",
                "tls": {"cert": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")},
                "capture": {"keylog": str(keylog)},
            }
        ],
        "upstreams": [{"name": "echo", "endpoints": [f"127.0.0.1:{echo.server_address[1]}"]}],
    }
    try:
        with ProxyThread(config) as proxy:
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            port = proxy.port("tls")
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(b"hello-over-tls")
                assert tls.recv(100) == b"hello-over-tls"
            assert wait_for(lambda: proxy.run(lambda: not proxy.app.proxy.connections), 10)
            app = proxy.app

            async def stop() -> Path:
                tap = app.captures.stop("tls")
                await tap.wait_stopped()
                return Path(tap.describe()["files"][0])

            path = proxy.call(stop)
    finally:
        echo.shutdown()
    got = streams(path)
    assert got[(next(s for s, d in got if d == port), port)] == b"hello-over-tls"  # plaintext
    comments = [c for c in _run(path, (), "-T", "fields", "-e", "frame.comment").splitlines() if c]
    assert comments == ["decrypted TLS: the plaintext the proxy terminated or originated"]
    secrets = keylog.read_text()
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in secrets or "CLIENT_RANDOM" in secrets
