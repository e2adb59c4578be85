"""Run the fake gRPC service on its own: ``python -m testbed.grpc [--port N]``.

For poking at it by hand (grpcurl, grpc_health_probe) and for tests that want
it in a separate process. Prints one line, ``listening <address> <h2c|tls>``,
once the server accepts calls, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .service import FakeGrpcService, ServerTls


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.grpc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cert", help="PEM certificate chain; serve TLS instead of h2c")
    parser.add_argument("--key", help="PEM private key for --cert")
    parser.add_argument("--client-ca", help="PEM CA bundle; require client certificates")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    if args.client_ca and not args.cert:
        parser.error("--client-ca needs --cert and --key")
    return args


async def _serve(args: argparse.Namespace) -> None:
    tls = ServerTls.from_files(args.cert, args.key, args.client_ca) if args.cert else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    async with FakeGrpcService(args.host, args.port, tls) as service:
        print(f"listening {service.address} {'tls' if tls else 'h2c'}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_serve(_parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
