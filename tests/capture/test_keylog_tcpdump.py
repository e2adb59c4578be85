"""The key log decrypts the encrypted wire: tcpdump on loopback, tshark with the log.

grpcio talks TLS (h2 by ALPN) to a listener that terminates TLS in front of
the testbed's gRPC service. tcpdump records the encrypted client leg; the
listener's `capture: {keylog: ...}` writes the handshake secrets. tshark,
given only the pcap and that key log, must see every call: the same
`:path`s, the same `grpc-status`es, on the same number of streams.
"""

from __future__ import annotations

import signal
import struct
import subprocess
from pathlib import Path

import pytest
import trustme

from testbed.grpc.client import SyncClient, channel_credentials
from testbed.grpc.threaded import ThreadedGrpcService
from tests.peers import ProxyThread, wait_for
from tests.tools import in_ci, require_tool

from .tshark import _run

CALLS = 20
UNARY = "/protoproxy.testbed.v1.TestService/Unary"
STREAM = "/protoproxy.testbed.v1.TestService/ServerStream"


def _tcpdump(port: int, path: Path) -> subprocess.Popen[str]:
    """tcpdump on loopback for `port`, once it says it is listening."""
    tcpdump = require_tool("tcpdump")
    proc = subprocess.Popen(
        # -Z root: keep root's rights, or tcpdump cannot write into pytest's tmp dir
        [tcpdump, "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0", "-Z", "root", "-w", str(path),
         f"tcp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on lo, ..." once the filter is in place
    if "listening on" not in line:  # e.g. not root: no capture permission
        proc.kill()
        reason = f"tcpdump cannot capture on lo here: {line.strip()}"
        if in_ci():
            pytest.fail(reason + "; CI=true forbids skipping", pytrace=False)
        pytest.skip(reason)
    return proc


def _ended_sides(path: Path, port: int) -> set[str]:
    """Which sides of connections to `port` have sent FIN or RST so far
    ("client", "listener"): tcpdump writes packets some time after the kernel
    saw them, and a capture stopped before it wrote the ends loses the tail."""
    data = path.read_bytes()
    ended: set[str] = set()
    pos = 24  # pcap file header
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        packet = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if len(packet) < 14 + 20 or packet[12:14] != b"\x08\x00":  # IPv4 over Ethernet
            continue
        tcp = 14 + (packet[14] & 0x0F) * 4
        if len(packet) < tcp + 14:
            continue
        sport, dport = struct.unpack_from(">HH", packet, tcp)
        if packet[tcp + 13] & 0x05:  # FIN or RST
            ended.add("listener" if sport == port else "client" if dport == port else "")
    return ended


def test_tshark_decrypts_a_tcpdump_capture_with_the_key_log(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    keylog = tmp_path / "keys.log"
    wire = tmp_path / "wire.pcap"
    with ThreadedGrpcService() as server:
        config = {
            "admin": {"enabled": False},
            "captures": {"dir": str(tmp_path / "taps")},
            "listeners": [
                {
                    "name": "tls",
                    "listen": "127.0.0.1:0",
                    "protocol": "grpc",
                    "upstream": "svc",
                    "tls": {
                        "cert": str(tmp_path / "cert.pem"),
                        "key": str(tmp_path / "key.pem"),
                        "alpn": ["h2"],
                    },
                    "capture": {"keylog": str(keylog)},
                }
            ],
            "upstreams": [{"name": "svc", "endpoints": [server.address]}],
        }
        with ProxyThread(config) as proxy:
            port = proxy.port("tls")
            dump = _tcpdump(port, wire)
            try:
                credentials = channel_credentials(ca.cert_pem.bytes())
                with SyncClient.connect(
                    f"127.0.0.1:{port}", credentials=credentials, server_name="localhost"
                ) as client:
                    results = [client.unary(payload=b"u%d" % i) for i in range(CALLS)]
                    results.append(client.server_stream(payload=b"s"))
                assert all(r.ok for r in results), [r for r in results if not r.ok][:1]
                assert wait_for(lambda: proxy.run(lambda: not proxy.app.proxy.connections), 10)
                # the client ends its connection after its last response: once
                # tcpdump has written that, it has written every call
                assert wait_for(lambda: "client" in _ended_sides(wire, port), 20)
            finally:
                # SIGINT: tcpdump flushes what it holds and exits; -U wrote each packet already
                dump.send_signal(signal.SIGINT)
                _, err = dump.communicate(timeout=30)
    assert "0 packets dropped by kernel" in err, err
    encrypted = wire.read_bytes()
    assert b"/protoproxy.testbed.v1.TestService" not in encrypted  # it is TLS on the wire

    def fields(*options: str) -> list[tuple[str, ...]]:
        out = _run(
            wire, (f"tcp.port=={port},tls",), *options,
            "-Y", "http2.type == 1", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
            "-e", "http2.streamid", "-e", "http2.header.name", "-e", "http2.header.value",
        )  # fmt: skip
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    # Without the key log tshark sees no HTTP/2 at all; with it, every call.
    assert fields() == []
    rows = fields("-o", f"tls.keylog_file:{keylog}")
    paths: list[str] = []
    statuses: list[str] = []
    for _sids, names, values in rows:
        for name, value in zip(names.split("|"), values.split("|"), strict=False):
            if name == ":path":
                paths.append(value)
            elif name == "grpc-status":
                statuses.append(value)
    assert paths == [UNARY] * CALLS + [STREAM]
    assert statuses == ["0"] * (CALLS + 1)
