"""`protoproxy testbed [SCENARIO.yaml]`: fake services and the proxy, on one laptop."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from protoproxy.cli import add_admin_token_flag, admin_token, announce_token
from protoproxy.config import ConfigError
from protoproxy.proxy import install_uvloop


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("testbed", help="start fake services behind the proxy and print where")
    p.add_argument("scenario", nargs="?", help="scenario YAML (default: the embedded one)")
    p.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (for demos/CI)"
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        help="print one JSON line per exchange (the scenario key access_log: true)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the gRPC service in this process, not a child (the key grpc.in_process: true)",
    )
    p.add_argument(
        "--schema",
        action="store_true",
        help="print the scenario file's JSON Schema and exit",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the scenario file and exit (non-zero, naming the path, on an error)",
    )
    add_admin_token_flag(p)
    p.set_defaults(func=run)


async def _main(args: argparse.Namespace) -> int:
    from .harness import Testbed
    from .scenario import load_scenario

    scenario = load_scenario(args.scenario)
    if args.access_log:
        scenario.access_log = True
    if args.in_process:
        scenario.grpc.in_process = True
    token = admin_token(args.admin_token)
    async with Testbed(scenario, admin_token=token) as tb:
        if args.admin_token == "auto" and token is not None:
            announce_token(token)
        print(tb.describe(), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration is not None:
            loop.call_later(args.duration, stop.set)
        await stop.wait()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.schema:
        from .scenario import json_schema

        print(json_schema())
        return 0
    if args.check:
        from .scenario import load_scenario
        from .setup_grpc_fakes import check
        from .setup_http_fakes import load_engines
        from .setup_kafka import load_seeds

        try:
            scenario = load_scenario(args.scenario)
            load_seeds(scenario)  # seed files are read, not only named
            check(scenario)  # protos compiled, stubs checked
            load_engines(scenario)  # WireMock mapping files parsed and checked
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{args.scenario or 'the default scenario'}: ok")
        return 0
    install_uvloop()
    try:
        return asyncio.run(_main(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
