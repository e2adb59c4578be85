"""Random pipelined request sequences against the fake service, read back with the codec."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http1 import Http1Codec
from testbed.http import FakeHttpService

REQUESTS = st.one_of(
    st.builds(
        lambda c: ("GET", f"/status/{c}", b"", str(c)), st.sampled_from([200, 204, 304, 404, 503])
    ),
    st.builds(lambda n: ("HEAD", f"/bytes/{n}", b"", "200"), st.integers(0, 5000)),
    st.builds(lambda n: ("GET", f"/chunked/{n}?size=97", b"", "200"), st.integers(0, 3000)),
    st.builds(lambda b: ("POST", "/echo", b, "200"), st.binary(max_size=500)),
)


def _render(method: str, target: str, body: bytes, last: bool) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: fake\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    if last:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


async def _run(requests: list[tuple[str, str, bytes, str]]) -> tuple[bytes, bytes]:
    async with FakeHttpService() as svc:
        reader, writer = await asyncio.open_connection(*svc.address)
        sent = b"".join(
            _render(m, t, b, i == len(requests) - 1) for i, (m, t, b, _) in enumerate(requests)
        )
        writer.write(sent)  # every request at once: pipelined
        received = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return sent, received


@settings(max_examples=25)
@given(st.lists(REQUESTS, min_size=1, max_size=8))
def test_pipelined_sequences(requests: list[tuple[str, str, bytes, str]]) -> None:
    sent, received = asyncio.run(_run(requests))
    codec = Http1Codec()
    out = codec.feed(UPSTREAM, sent) + codec.feed(DOWNSTREAM, received) + codec.eof(DOWNSTREAM)
    assert b"".join(m.raw for m in out if m.direction == DOWNSTREAM) == received
    exchanges = sorted(codec.take_exchanges(), key=lambda e: e.key)
    assert [(e.operation, e.status) for e in exchanges] == [
        (f"{m} {t.partition('?')[0]}", status) for m, t, _, status in requests
    ]
    for e, (m, t, body, _) in zip(exchanges, requests, strict=True):
        if m == "HEAD" or e.status in ("204", "304"):
            assert e.attrs["response_body_bytes"] == 0
        elif t.startswith("/chunked/"):
            assert e.attrs["response_body_bytes"] == int(t[9:].partition("?")[0])
        assert e.attrs["request_body_bytes"] == len(body)
