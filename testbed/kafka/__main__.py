"""Run a fake Kafka cluster on its own: `python -m testbed.kafka --topic orders:6`.

Handy for poking at the fake with kcat or an IDE without the proxy in front.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .cluster import FakeKafkaCluster


def _topic(spec: str) -> tuple[str, int]:
    name, _, partitions = spec.partition(":")
    return name, int(partitions or 1)


async def _serve(args: argparse.Namespace) -> None:
    ports = [args.port + n for n in range(args.brokers)] if args.port else None
    async with FakeKafkaCluster(args.brokers, host=args.host, ports=ports, seed=args.seed) as c:
        for name, partitions in args.topic:
            c.create_topic(name, partitions)
        print(f"fake kafka: {c.bootstrap_servers} (seed {args.seed})", flush=True)
        print(f"  try: kcat -b {c.bootstrap} -L", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m testbed.kafka", description=__doc__)
    ap.add_argument("--brokers", type=int, default=3)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="first broker's port (0: ephemeral)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--topic", type=_topic, action="append", default=[], metavar="NAME[:PARTITIONS]"
    )
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
