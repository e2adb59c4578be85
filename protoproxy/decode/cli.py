"""`protoproxy decode FILE.pcap`: registered through the protoproxy.commands entry points."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode a pcap/pcapng capture with the proxy's codecs")
    p.add_argument("file", help="pcap or pcapng file")
    p.add_argument("--protocol", choices=["kafka", "http2", "http", "tcp"], default=None)
    p.add_argument("--format", choices=["table", "jsonl", "access-log"], default="table")
    p.add_argument(
        "--summary", action="store_true", help="per-operation counts and latency percentiles"
    )
    p.add_argument(
        "--descriptors",
        action="append",
        default=[],
        metavar="FILE",
        help="a FileDescriptorSet (.binpb/.pb) or .proto file: gRPC messages typed (repeatable)",
    )
    p.add_argument(
        "-I",
        "--import-path",
        action="append",
        default=[],
        metavar="DIR",
        help="where --descriptors .proto files import from (repeatable)",
    )
    p.add_argument(
        "--frames", action="store_true", help="list every HTTP/2 frame instead of exchanges"
    )
    p.set_defaults(func=run)


def catalog(files: list[str], import_paths: list[str]) -> Any:
    """One DescriptorCatalog of the descriptor sets and .proto files given."""
    from pathlib import Path

    from protoproxy.record.schema import compile_protos
    from protoproxy_codecs.protobuf_display import DescriptorCatalog

    out = DescriptorCatalog()
    protos = [Path(f) for f in files if f.endswith(".proto")]
    for f in files:
        if not f.endswith(".proto"):
            out.add(Path(f).read_bytes())
    if protos:
        out.add(compile_protos(protos, [Path(p) for p in import_paths]))
    return out


def run(args: argparse.Namespace) -> int:
    from protoproxy.record.schema import SchemaError
    from protoproxy_codecs.base import DecodeError

    from . import output, summary
    from .decoder import decode, frame_rows, rows

    types = None
    if args.descriptors:
        try:
            types = catalog(args.descriptors, args.import_path)
        except (OSError, DecodeError, SchemaError) as exc:
            sys.stderr.write(f"protoproxy decode: --descriptors: {exc}\n")
            return 2

    size = os.path.getsize(args.file)
    progress = None
    if sys.stderr.isatty() and size > 8 * 1024 * 1024:

        def progress(offset: int) -> None:
            sys.stderr.write(f"\r{offset * 100 // size:3d}% of {size >> 20} MiB")

    streams = decode(args.file, args.protocol, progress, frames=args.frames)
    if progress is not None:
        sys.stderr.write("\r" + " " * 30 + "\r")
    out = list(rows(streams, types))
    if args.frames:
        write = output.frame_table if args.format == "table" else output.jsonl
        write(list(frame_rows(streams)), sys.stdout)
    else:
        {"table": output.table, "jsonl": output.jsonl, "access-log": output.access_log}[
            args.format
        ](out, sys.stdout)
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
