"""Passive HTTP/2 + gRPC decode cost per unary call (both directions).

Generates a connection's worth of unary gRPC calls with two h2 endpoints
(header sets shaped like grpc C-core's, a varying grpc-timeout, a 100-byte
request and response), records the bytes each direction writes per call, then
times Http2Codec.feed over them. Prints µs per call and frames per second,
and the same bytes through the h2 stack's own parsers (hyperframe + hpack,
used passively) for comparison. DESIGN's reference figure: 43 µs per call.

    python bench/h2_decode.py [--calls N] [--repeat R] [--profile]
    python bench/h2_decode.py --conversation get|grpc [--requests N] [--profile]

`--conversation` measures the proxy's whole per-message path without sockets
or machine-load noise: it records one h2load connection (`-m 32`, the
workloads of bench/h2_proxy.py) to nginx through a byte-recording relay, then
replays the recorded reads, chunk by chunk, into a real `Connection` of a real
`App` (codec, every installed filter, every exchange observer; writes go to a
null outlet) and reports process CPU µs per request, best of `--repeat`.
Recordings are cached under /tmp, so before/after figures use the same bytes.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http2 import Http2Codec

REQUEST = [
    (":scheme", "http"),
    (":method", "POST"),
    (":authority", "127.0.0.1:50051"),
    (":path", "/helloworld.Greeter/SayHello"),
    ("te", "trailers"),
    ("content-type", "application/grpc"),
    ("user-agent", "grpc-python/1.85.3 grpc-c/52.0.0 (linux; chttp2)"),
    ("grpc-accept-encoding", "identity, deflate, gzip"),
    ("grpc-timeout", "TIMEOUT"),
]
RESPONSE = [
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-accept-encoding", "identity, deflate, gzip"),
]
TRAILERS = [("grpc-status", "0")]


def _conn(client: bool) -> h2.connection.H2Connection:
    return h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=client, header_encoding="utf-8")
    )


def _ack(conn: h2.connection.H2Connection, events: list) -> None:
    for ev in events:
        if isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)


def record(calls: int, vary_timeout: bool) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """(client setup bytes, server setup bytes, [(request bytes, response bytes)] per call)."""
    c, s = _conn(True), _conn(False)
    c.initiate_connection()
    s.initiate_connection()
    c_setup, s_setup = c.data_to_send(), s.data_to_send()
    s.receive_data(c_setup)
    c.receive_data(s_setup)
    c_ack, s_ack = c.data_to_send(), s.data_to_send()
    s.receive_data(c_ack)
    c.receive_data(s_ack)
    message = struct.pack(">BL", 0, 100) + b"m" * 100
    out = []
    for i in range(calls):
        sid = c.get_next_available_stream_id()
        timeout = f"{99_000 - i % 997}u" if vary_timeout else "100m"
        c.send_headers(sid, [(k, timeout if v == "TIMEOUT" else v) for k, v in REQUEST])
        c.send_data(sid, message, end_stream=True)
        req = c.data_to_send()
        _ack(s, s.receive_data(req))
        s.send_headers(sid, RESPONSE)
        s.send_data(sid, message)
        s.send_headers(sid, TRAILERS, end_stream=True)
        resp = s.data_to_send()  # with the server's WINDOW_UPDATEs for the request
        _ack(c, c.receive_data(resp))  # the client's go out with its next request
        out.append((req, resp))
    return c_setup + c_ack, s_setup + s_ack, out


def run_codec(
    setup: tuple[bytes, bytes], calls: list[tuple[bytes, bytes]]
) -> tuple[float, int, int]:
    codec = Http2Codec()
    codec.feed(UPSTREAM, setup[0][: 24 + 9 + 42])
    codec.feed(DOWNSTREAM, setup[1])
    codec.feed(UPSTREAM, setup[0][24 + 9 + 42 :])
    feed = codec.feed
    frames = 0
    t0 = time.perf_counter()
    for req, resp in calls:
        frames += len(feed(UPSTREAM, req))
        frames += len(feed(DOWNSTREAM, resp))
    elapsed = time.perf_counter() - t0
    assert len(codec.take_exchanges()) == len(calls)
    return (
        elapsed,
        frames,
        codec.header_decoder(DOWNSTREAM).hits + codec.header_decoder(UPSTREAM).hits,
    )


def run_h2(setup: tuple[bytes, bytes], calls: list[tuple[bytes, bytes]]) -> float:
    """The h2 stack's own parsing pieces, used passively: hyperframe frames + hpack."""
    decoders = (hpack.Decoder(), hpack.Decoder())
    header_types = (HeadersFrame, ContinuationFrame)

    def parse(data: bytes, decoder: hpack.Decoder) -> None:
        view = memoryview(data)
        pos = 0
        block = b""
        while pos < len(data):
            frame, length = Frame.parse_frame_header(view[pos : pos + 9])
            frame.parse_body(view[pos + 9 : pos + 9 + length])
            pos += 9 + length
            if isinstance(frame, header_types):
                block += frame.data
                if "END_HEADERS" in frame.flags:
                    decoder.decode(block)
                    block = b""

    parse(setup[0][24:], decoders[0])
    parse(setup[1], decoders[1])
    t0 = time.perf_counter()
    for req, resp in calls:
        parse(req, decoders[0])
        parse(resp, decoders[1])
    return time.perf_counter() - t0


# -- recorded h2load conversations replayed through the runtime -----------------


def record_conversation(workload: str, requests: int) -> list[tuple[int, bytes]]:
    """(direction, bytes) reads of one h2load connection through a recording relay."""
    import asyncio
    import subprocess
    import tempfile
    import threading
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from common import free_port, need, nginx_small

    web, relay_port = free_port(), free_port()
    chunks: list[tuple[int, bytes]] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def pump(direction: int, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(262144):
            chunks.append((direction, data))
            w.write(data)
            await w.drain()
        w.close()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", web)
        await asyncio.gather(pump(0, cr, uw), pump(1, ur, cw))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", relay_port)
        async with server:
            ready.set()
            await asyncio.Event().wait()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    with tempfile.TemporaryDirectory() as d, nginx_small(web, h2c=True):
        thread.start()
        asyncio.run_coroutine_threadsafe(serve(), loop)
        ready.wait(10)
        body = Path(d) / "body"
        body.write_bytes(b"\x00\x00\x00\x00\x0a" + b"\x0a\x08abcdefgh")
        cmd = [need("h2load"), "-n", str(requests), "-c", "1", "-m", "32"]
        if workload == "grpc":
            cmd += ["-d", str(body), "-H", "content-type: application/grpc"]
            cmd += ["-H", "te: trailers", "-H", "grpc-timeout: 5S"]
        cmd.append(f"http://127.0.0.1:{relay_port}/pkg.Service/Method")
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        time.sleep(0.2)
    loop.call_soon_threadsafe(loop.stop)
    return chunks


def conversation(workload: str, requests: int) -> list[tuple[int, bytes]]:
    import pickle
    from pathlib import Path

    path = Path(f"/tmp/protoproxy-h2-{workload}-{requests}.pickle")
    if path.exists():
        return pickle.loads(path.read_bytes())
    chunks = record_conversation(workload, requests)
    path.write_bytes(pickle.dumps(chunks))
    return chunks


class _NullOutlet:
    """Stands in for both Sides. `busy` as a Side reads: the relay asks any outlet
    that is not a Side whether a fault stage holds its bytes, and a missing
    attribute would make that a getattr miss per read, a cost no socket pays."""

    busy = False
    transport = None  # no socket write buffer for the memory accountant to count

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, chunks: list[bytes]) -> None:
        pass

    def write_eof(self) -> None:
        pass


#: ``--record DIR``: the listener records into DIR (the cost of the ``record`` option)
RECORD_DIR: str | None = None


def replay(chunks: list[tuple[int, bytes]], codec_only: bool, collector: str = "on") -> float:
    """Process CPU seconds to push `chunks` through one Connection (or one codec).

    `collector`: "on" (as the proxy runs), "off" (gc.disable() while timing) or
    "freeze" (gc.freeze() once the App is built): how much of the per-request
    cost is the cyclic collector walking the application's objects.
    """
    import asyncio
    import gc

    from protoproxy.app import App
    from protoproxy.config import Config
    from protoproxy.connection import Connection

    try:
        from protoproxy.connection_state import State
    except ImportError:  # an older tree, before the lifecycle table
        State = None  # type: ignore[assignment,misc]
    from protoproxy.listener import ListenerRuntime

    dirs = (UPSTREAM, DOWNSTREAM)
    work = [(dirs[d], data) for d, data in chunks]

    async def run() -> float:
        config = Config.model_validate(
            {
                "admin": {"enabled": False},
                "listeners": [
                    {
                        "name": "h2",
                        "listen": "127.0.0.1:0",
                        "protocol": "http2",
                        "upstream": "u",
                        **({"record": {"dir": RECORD_DIR}} if RECORD_DIR else {}),
                    }
                ],
                "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:1"]}],
            }
        )
        app = App(config)
        lst = ListenerRuntime(app.proxy, config.listeners[0])
        conn = Connection(app.proxy, lst)
        conn.outlets[UPSTREAM] = conn.outlets[DOWNSTREAM] = _NullOutlet()
        # The sockets' attribute names changed (down/up, now client/server): set
        # both so one script measures older trees too.
        for side in ("client", "server", "down", "up"):
            setattr(conn, side, _NullOutlet())
        conn._choose_codec("http2")
        if hasattr(conn, "machine"):  # the lifecycle table (older trees: a string)
            conn.machine.state = State.OPEN
        else:
            conn.state = "open"
        if codec_only:
            codec = conn.codec
            assert codec is not None
            t0 = time.process_time()
            for direction, data in work:
                codec.feed(direction, data)
                codec.take_exchanges()
            return time.process_time() - t0
        on_data = conn.on_data
        if collector == "freeze":
            gc.collect()
            gc.freeze()
        elif collector == "off":
            gc.disable()
        try:
            t0 = time.process_time()
            for direction, data in work:
                on_data(direction, data)
            return time.process_time() - t0
        finally:
            gc.enable()
            gc.unfreeze()

    return asyncio.run(run())


def main_conversation(args: argparse.Namespace) -> None:
    chunks = conversation(args.conversation, args.requests)
    n = args.requests
    if args.profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0001)
        prof.start()
        replay(chunks, False)
        prof.stop()
        print(prof.output_text(unicode=True, color=False))
        return
    full = min(replay(chunks, False, args.gc) for _ in range(args.repeat))
    codec = min(replay(chunks, True) for _ in range(args.repeat))
    print(
        f"{args.conversation}: {n} requests, {len(chunks)} reads; "
        f"Connection path {full / n * 1e6:.2f} µs/req, codec alone {codec / n * 1e6:.2f} µs/req "
        f"(process CPU, best of {args.repeat}; collector {args.gc} on the Connection path)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversation", choices=["get", "grpc"])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fixed-timeout", action="store_true", help="same grpc-timeout every call")
    ap.add_argument("--profile", action="store_true", help="pyinstrument profile of one run")
    ap.add_argument("--record", metavar="DIR", help="--conversation: the listener records into DIR")
    ap.add_argument("--no-h2", action="store_true", help="skip the h2 comparison")
    ap.add_argument(
        "--gc",
        choices=["on", "off", "freeze"],
        default="on",
        help="--conversation: the cyclic collector while timing the Connection path",
    )
    args = ap.parse_args()
    global RECORD_DIR
    RECORD_DIR = args.record
    if args.conversation:
        main_conversation(args)
        return
    c_setup, s_setup, calls = record(args.calls, not args.fixed_timeout)
    setup = (c_setup, s_setup)
    if args.profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0001)
        prof.start()
        run_codec(setup, calls)
        prof.stop()
        print(prof.output_text(unicode=True, color=False))
        return
    best = min(run_codec(setup, calls) for _ in range(args.repeat))
    elapsed, frames, hits = best
    per_call = elapsed / len(calls) * 1e6
    print(f"calls: {len(calls)}, frames/call: {frames / len(calls):.1f}, hpack cache hits: {hits}")
    print(f"Http2Codec passive decode: {per_call:.1f} µs/call, {frames / elapsed:,.0f} frames/s")
    if not args.no_h2:
        h2_time = min(run_h2(setup, calls) for _ in range(args.repeat))
        h2_per_call = h2_time / len(calls) * 1e6
        print(
            f"hyperframe + hpack (the h2 stack's parsers), passive: {h2_per_call:.1f} µs/call ({h2_per_call / per_call:.1f}x ours)"
        )
    print("DESIGN reference (passive frame + HPACK decode): 43 µs/call")


if __name__ == "__main__":
    main()
