"""ClientHello parsing: SNI and ALPN from real OpenSSL hellos, any truncation, any garbage."""

from __future__ import annotations

import ssl

from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DecodeError, Sniff
from protoproxy_codecs.tls import parse_client_hello, sniff

label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20)
# OpenSSL sends no SNI for IP literals, so the last label always has a letter.
hostnames = st.tuples(st.lists(label, max_size=3), st.from_regex(r"\A[a-z][a-z0-9]{0,9}\Z")).map(
    lambda parts: ".".join([*parts[0], parts[1]])
)
protocols = st.lists(
    st.sampled_from(["h2", "http/1.1", "kafka", "grpc-exp", "acme-tls/1"]), unique=True, max_size=4
)


def real_hello(host: str | None, alpn: list[str]) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


@given(host=hostnames, alpn=protocols)
def test_sni_and_alpn_from_openssl(host, alpn):
    data = real_hello(host, alpn)
    assert sniff(data[:6]) is Sniff.YES
    hello = parse_client_hello(data + b"trailing application bytes")
    assert hello is not None
    assert hello.sni == host
    assert hello.alpn == alpn
    assert hello.length == len(data)
    assert 0x0304 in hello.versions


@given(host=hostnames, cut=st.integers(0, 600))
def test_every_prefix_needs_more(host, cut):
    data = real_hello(host, [])
    if cut < len(data):
        assert parse_client_hello(data[:cut]) is None


def test_hello_split_across_records():
    data = real_hello("split.example", ["h2"])
    body = data[5:]
    records = b""
    for i in range(0, len(body), 100):
        piece = body[i : i + 100]
        records += b"\x16\x03\x01" + len(piece).to_bytes(2, "big") + piece
    hello = parse_client_hello(records)
    assert hello is not None and hello.sni == "split.example" and hello.alpn == ["h2"]


@given(st.binary(max_size=2000))
def test_garbage_is_decode_error_or_need_more(data):
    try:
        parse_client_hello(data)
    except DecodeError:
        pass


@given(host=hostnames, pos=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_mutated_hello_never_raises_anything_else(host, pos, byte):
    data = bytearray(real_hello(host, ["h2"]))
    data[pos % len(data)] = byte
    try:
        parse_client_hello(bytes(data))
    except DecodeError:
        pass


def test_sniff_rejects_plaintext():
    assert sniff(b"GET / HTTP/1.1\r\n") is Sniff.NO
    assert sniff(b"") is Sniff.NEED_MORE
    assert sniff(b"\x16\x03") is Sniff.NEED_MORE
