"""`protoproxy decode FILE.pcap`: registered through the protoproxy.commands entry points."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode a pcap/pcapng capture with the proxy's codecs")
    p.add_argument("file", help="pcap or pcapng file")
    p.add_argument("--protocol", choices=["kafka", "http2", "http", "tcp"], default=None)
    p.add_argument("--format", choices=["table", "jsonl", "access-log"], default="table")
    p.add_argument(
        "--summary", action="store_true", help="per-operation counts and latency percentiles"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import output, summary
    from .decoder import decode, rows

    size = os.path.getsize(args.file)
    progress = None
    if sys.stderr.isatty() and size > 8 * 1024 * 1024:

        def progress(offset: int) -> None:
            sys.stderr.write(f"\r{offset * 100 // size:3d}% of {size >> 20} MiB")

    streams = decode(args.file, args.protocol, progress)
    if progress is not None:
        sys.stderr.write("\r" + " " * 30 + "\r")
    out = list(rows(streams))
    {"table": output.table, "jsonl": output.jsonl, "access-log": output.access_log}[args.format](
        out, sys.stdout
    )
    for sd in streams:
        for g in sd.gaps:
            sys.stderr.write(f"conn {sd.conn}: gap of {g['bytes']} bytes {g['direction']}\n")
        for e in sd.errors:
            sys.stderr.write(f"conn {sd.conn}: {e}\n")
        if sd.dead:
            sys.stderr.write(f"conn {sd.conn}: {sd.dead}\n")
    if args.summary:
        summary.write(out, sys.stdout)
    return 0
