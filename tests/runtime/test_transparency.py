"""Transparency: with no filter acting, each side gets exactly the other's bytes.

Hypothesis picks payloads (0 B to 4 MiB) and chunkings for both directions;
each direction ends with a half-close that the other side must see. Three
set-ups: plaintext, TLS terminated at the proxy, and TLS terminated and
re-originated to a TLS upstream.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.peers import ProxyThread, Script, ScriptedServer, exchange
from tests.runtime.conftest import client_context, server_context

sizes = st.one_of(st.integers(0, 4096), st.integers(0, 256 * 1024), st.integers(0, 4 << 20))
chunkings = st.lists(st.integers(1, 300_000), min_size=1, max_size=8)


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module", params=["plain", "tls-terminate", "tls-reoriginate"])
def setup(request, certs):
    mode = request.param
    upstream_tls = server_context(certs, "upstream.test") if mode == "tls-reoriginate" else None
    server = ScriptedServer(tls=upstream_tls)
    listener = {"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}
    upstream = {"name": "u", "endpoints": [server.address]}
    if mode != "plain":
        listener["tls"] = {"cert": str(certs["proxy.test"]), "key": str(certs["proxy.test.key"])}
    if mode == "tls-reoriginate":
        upstream["tls"] = {"ca": str(certs["ca"]), "server_name": "upstream.test"}
    with ProxyThread({"listeners": [listener], "upstreams": [upstream]}) as proxy:
        client_tls = client_context(certs) if mode != "plain" else None
        yield proxy, server, client_tls
    server.close()


@settings(max_examples=int(os.environ.get("TRANSPARENCY_EXAMPLES", "12")))
@given(
    up_size=sizes,
    down_size=sizes,
    up_chunks=chunkings,
    down_chunks=chunkings,
    seed=st.integers(0, 2**32),
)
def test_bytes_and_half_close_pass_unchanged(
    setup, up_size, down_size, up_chunks, down_chunks, seed
):
    proxy, server, client_tls = setup
    sent_up = payload(seed, up_size)
    sent_down = payload(seed + 1, down_size)
    server.scripts.put(Script(sent_down, down_chunks))
    got_down = exchange(
        proxy.port("l"), sent_up, up_chunks, tls=client_tls, server_hostname="proxy.test"
    )
    got_up = server.received.get(timeout=60)
    if isinstance(got_up, BaseException):
        raise got_up
    # Both reads ended on EOF, so each side saw the other's half-close.
    assert got_up == sent_up
    assert got_down == sent_down
