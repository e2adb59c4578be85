"""Make TestService calls from a shell: ``python -m testbed.grpc.call ADDRESS [METHOD]``.

The README's tour needs one gRPC call through the proxy for `/grpc/methods` to
show anything, and a user poking at the testbed has no grpcurl and no .proto
at hand. Prints one line per call, ``Unary OK 1 response(s)``, and exits 1 if
any call ended with a status other than OK.
"""

from __future__ import annotations

import argparse
import sys

from .behaviour import Behaviour
from .client import SyncClient
from .names import METHODS


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.grpc.call", description=__doc__)
    parser.add_argument("address", help="host:port of the service or of the proxy's gRPC port")
    parser.add_argument("method", nargs="?", default="Unary", choices=METHODS)
    parser.add_argument("-n", "--calls", type=int, default=1, help="how many calls (default 1)")
    parser.add_argument("--status", help="ask the service to answer with this gRPC status")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline per call, seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 100_000:
        parser.error("--calls must be between 1 and 100000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    behaviour = Behaviour.make(status=args.status) if args.status else None
    failed = 0
    with SyncClient.connect(args.address) as client:
        for _ in range(args.calls):
            result = client.call(args.method, behaviour, timeout=args.timeout)
            detail = f" {result.details}" if result.details else ""
            print(f"{args.method} {result.code.name} {len(result.responses)} response(s){detail}")
            failed += not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
