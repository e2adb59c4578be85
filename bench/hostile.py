"""Third-party clients against hostile fakes: errors, crashes and hangs, each traced.

    python bench/hostile.py [--seconds 60] [--rate 0.2] [--seed 7] [--watchdog 20]
                            [--clients kafka-python,confluent-kafka,grpcio]
                            [--save fixtures/hostile] [--show 3]

For each client, one testbed with the client's fake made hostile
(``kafka: {hostile: {seed, rate}}`` or ``grpc: {hostile: ...}`` on the shop
fixture), behind the real proxy, and a loop of operations for `--seconds`:

- kafka-python: produce one record and wait for its ack; list the groups;
- confluent-kafka: produce one record and flush; list the topics;
- grpcio: ``shop.v1.Catalog/GetItem`` and the ``ListItems`` stream, each with
  its ``x-op`` metadata.

Each operation gives its client its own timeouts (5 s) and runs under a
watchdog (`--watchdog` seconds) in a worker thread: past it the operation is
a **hang**, and the client is abandoned for a new one. An operation ends
**ok**, with a client **error** (the library's own error type: what a
hostile answer is expected to cause), or with a **crash** (any other
exception out of the library: a bug, unless the application misused it).

Every error, crash and hang is traced to the journal: gRPC calls by their
``x-op`` metadata (the exact call), Kafka operations by the client's
client id (each client instance has its own): the hostile answers to it
during the operation, else the last one before it ("before": a client keeps
state, such as a throttle pause, from an earlier answer). **traced** counts
failures with such an entry, **untraced** the others (not the fakes' doing,
or a client that failed before any hostile answer reached it). The first
`--show` failures per (client, outcome, exception type, and the status code
of a gRPC error the client raised itself rather than the one the fake sent)
are printed with their journal entries; `--save DIR` writes each as a replay
file (scenario + operation + outcome + journal entries).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from testbed.journal import HostileAnswer  # noqa: E402
from testbed.scenario import load_scenario  # noqa: E402
from testbed.threaded import TestbedThread  # noqa: E402

OFF = {"enabled": False}
CLIENT_TIMEOUT_S = 5
#: failures in a row after which a client is replaced by a new one
RENEW_AFTER = 3


@dataclass
class Failure:
    client: str
    op: str
    outcome: str  # "error", "crash", "hang"
    exception: str
    detail: str
    entries: list[HostileAnswer]
    call: str = ""
    #: monotonic ns the operation started at
    started: int = 0

    @property
    def code(self) -> str:
        """The status code (``internal``) of a gRPC error the client made itself, else
        "": an odd status the fake sent is one finding, each code grpcio raised another."""
        head = self.detail.split(":", 1)[0]
        if not head.startswith("StatusCode."):
            return ""
        name = head.removeprefix("StatusCode.")
        sent = any(edit.startswith(f"status={name} ") for e in self.entries for edit in e.edits)
        return "" if sent else name.lower()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.client, self.outcome, "-".join(filter(None, (self.exception, self.code))))


@dataclass
class Tally:
    ops: int = 0
    ok: int = 0
    errors: int = 0
    crashes: int = 0
    hangs: int = 0
    traced: int = 0
    untraced: int = 0
    hostile: int = 0
    #: clients replaced (after a hang, or RENEW_AFTER failures in a row)
    renewed: int = 0
    failures: list[Failure] = field(default_factory=list)


def kafka_scenario(seed: int, rate: float) -> dict[str, Any]:
    return {
        "kafka": {"brokers": 1, "hostile": {"seed": seed, "rate": rate}},
        "grpc": OFF,
        "http": OFF,
        "echo": OFF,
        "journal": {"limit": 200_000},
    }


SHOP = "fixtures/grpc_fakes/shop/scenario.yaml"


def grpc_overrides(seed: int, rate: float) -> dict[str, Any]:
    """What the shop fixture's scenario gets (the replay file's form: file + overrides)."""
    return {"grpc": {"hostile": {"seed": seed, "rate": rate}}, "journal": {"limit": 200_000}}


def grpc_scenario(seed: int, rate: float) -> dict[str, Any]:
    data = load_scenario(ROOT / SHOP).model_dump(mode="json")
    for key, value in grpc_overrides(seed, rate).items():
        data[key] = {**data[key], **value} if key == "grpc" else value
    return data


# -- clients: each returns (make_client, [(op name, fn(client, op_id))], close) ------------


class KafkaPythonOps:
    name = "kafka-python"
    library_errors: tuple[type[BaseException], ...]

    def __init__(self, bootstrap: str) -> None:
        from kafka.errors import KafkaError

        self.library_errors = (KafkaError,)
        self.bootstrap = bootstrap

    def make(self, client_id: str) -> Any:
        from kafka import KafkaAdminClient, KafkaProducer

        t = CLIENT_TIMEOUT_S * 1000
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=client_id,
            request_timeout_ms=t,
            max_block_ms=t,
            delivery_timeout_ms=t + 1000,
            linger_ms=0,
            retries=1,
        )
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id=client_id, request_timeout_ms=t
        )
        return producer, admin

    def ops(self) -> list[tuple[str, Callable[[Any, str], Any]]]:
        def produce(c: Any, op: str) -> Any:
            return c[0].send("orders", op.encode()).get(timeout=CLIENT_TIMEOUT_S)

        def list_groups(c: Any, op: str) -> Any:
            return c[1].list_groups()

        return [("produce", produce), ("list_groups", list_groups)]

    def close(self, c: Any) -> None:
        c[0].close(timeout=1)
        c[1].close()


class ConfluentOps:
    name = "confluent-kafka"

    def __init__(self, bootstrap: str) -> None:
        import confluent_kafka

        self.library_errors = (confluent_kafka.KafkaException,)
        self.bootstrap = bootstrap

    def make(self, client_id: str) -> Any:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        t = CLIENT_TIMEOUT_S * 1000
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "client.id": client_id,
                "message.timeout.ms": t,
                "socket.timeout.ms": t,
                "linger.ms": 0,
            }
        )
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "client.id": client_id})
        return producer, admin

    def ops(self) -> list[tuple[str, Callable[[Any, str], Any]]]:
        import confluent_kafka

        def produce(c: Any, op: str) -> Any:
            result: list[Any] = []
            c[0].produce("orders", op.encode(), on_delivery=lambda err, msg: result.append(err))
            c[0].flush(CLIENT_TIMEOUT_S + 2)
            if not result:
                raise confluent_kafka.KafkaException("no delivery report within the timeout")
            if result[0] is not None:
                raise confluent_kafka.KafkaException(result[0])
            return "delivered"

        def list_topics(c: Any, op: str) -> Any:
            return c[1].list_topics(timeout=CLIENT_TIMEOUT_S)

        return [("produce", produce), ("list_topics", list_topics)]

    def close(self, c: Any) -> None:
        c[0].flush(0)


class GrpcioOps:
    name = "grpcio"

    def __init__(self, target: str) -> None:
        import grpc

        self.grpc = grpc
        from testbed.grpc_fakes import schema

        self.library_errors = (grpc.RpcError,)
        self.target = target
        shop = ROOT / "fixtures/grpc_fakes/shop/protos"
        # the client parses answers as a generated stub would, with the shop's own classes
        self.item = (
            schema.load({"protos": [str(shop / "shop/v1/shop.proto")], "import_paths": [str(shop)]})
            .methods["shop.v1.Catalog/GetItem"]
            .output
        )

    def make(self, client_id: str) -> Any:
        return self.grpc.insecure_channel(self.target)

    def ops(self) -> list[tuple[str, Callable[[Any, str], Any]]]:
        def get_item(ch: Any, op: str) -> Any:
            call = ch.unary_unary(
                "/shop.v1.Catalog/GetItem", response_deserializer=self.item.FromString
            )
            # GetItemRequest{id: "book-1"}
            return call(b"\x0a\x06book-1", timeout=CLIENT_TIMEOUT_S, metadata=[("x-op", op)])

        def list_items(ch: Any, op: str) -> Any:
            call = ch.unary_stream(
                "/shop.v1.Catalog/ListItems", response_deserializer=self.item.FromString
            )
            # ListItemsRequest{category: CATEGORY_BOOK}
            return list(call(b"\x08\x01", timeout=CLIENT_TIMEOUT_S, metadata=[("x-op", op)]))

        return [("get_item", get_item), ("list_items", list_items)]

    def close(self, ch: Any) -> None:
        ch.close()


# -- the loop -------------------------------------------------------------------------------


def run_client(ops_cls: type, tb: TestbedThread, address: str, args: argparse.Namespace) -> Tally:
    impl = ops_cls(address)
    tally = Tally()
    ids = itertools.count()
    pool = cf.ThreadPoolExecutor(max_workers=64, thread_name_prefix=impl.name)
    generation = itertools.count()
    client_id = f"hostile-{impl.name}-{next(generation)}"
    client = impl.make(client_id)
    ops = impl.ops()
    streak = 0  # failures in a row
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        name, fn = ops[tally.ops % len(ops)]
        op_id = f"{impl.name}-{next(ids)}"
        tally.ops += 1
        started = time.monotonic_ns()
        future = pool.submit(fn, client, op_id)
        outcome = "ok"
        exception = detail = ""
        try:
            future.result(timeout=args.watchdog)
        except cf.TimeoutError:
            outcome, exception, detail = "hang", "watchdog", f"no result in {args.watchdog} s"
        except impl.library_errors as exc:
            outcome, exception, detail = "error", type(exc).__name__, _detail(exc)
        except Exception as exc:
            outcome, exception = "crash", type(exc).__name__
            detail = "".join(traceback.format_exception(exc)[-3:])
        ended = time.monotonic_ns()
        if outcome == "ok":
            tally.ok += 1
            streak = 0
            continue
        counter = {"error": "errors", "crash": "crashes", "hang": "hangs"}[outcome]
        setattr(tally, counter, getattr(tally, counter) + 1)
        entries = _trace(tb, impl.name, client_id, op_id, started, ended)
        if entries:
            tally.traced += 1
        else:
            tally.untraced += 1
        tally.failures.append(
            Failure(impl.name, name, outcome, exception, detail, entries, op_id, started)
        )
        streak += 1
        if outcome == "hang" or streak >= RENEW_AFTER:
            # a wedged client (or one an answer left failing) is left to its thread;
            # a new one, with a new client id, goes on
            client_id = f"hostile-{impl.name}-{next(generation)}"
            client = impl.make(client_id)
            tally.renewed += 1
            streak = 0
    tally.hostile = len(tb.journal.hostile())
    pool.shutdown(wait=False, cancel_futures=True)
    try:
        impl.close(client)
    except Exception:
        pass
    return tally


def _trace(
    tb: TestbedThread, client: str, client_id: str, op_id: str, started: int, ended: int
) -> list[HostileAnswer]:
    """The hostile answers behind one failed operation (see the module's docstring)."""
    if client == "grpcio":
        # the client may see its error before the fake's handler has ended (and journaled)
        for _ in range(10):
            found = [e for e in _hostile(tb) if e.metadata.get("x-op") == op_id]
            if found:
                return found
            time.sleep(0.1)
        return []
    mine = [e for e in _hostile(tb) if e.client_id == client_id and e.at_ns <= ended]
    inside = [e for e in mine if e.at_ns >= started]
    return inside or mine[-1:]


def _hostile(tb: TestbedThread) -> list[HostileAnswer]:
    return [e for e in tb.journal.hostile() if isinstance(e, HostileAnswer)]


def _detail(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            return f"{code()}: {str(exc.details())[:160]}"  # type: ignore[attr-defined]
        except Exception:
            pass
    return str(exc)[:200]


def report(results: dict[str, Tally], args: argparse.Namespace, scenarios: dict[str, Any]) -> None:
    cols = (
        "client",
        "ops",
        "ok",
        "errors",
        "crashes",
        "hangs",
        "traced",
        "untraced",
        "hostile",
        "renewed",
    )
    print(f"\nhostile fakes: seed {args.seed}, rate {args.rate}, {args.seconds:g} s per client")
    print(" | ".join(f"{c:>15}" if i == 0 else f"{c:>8}" for i, c in enumerate(cols)))
    for name, t in results.items():
        row = (
            t.ops,
            t.ok,
            t.errors,
            t.crashes,
            t.hangs,
            t.traced,
            t.untraced,
            t.hostile,
            t.renewed,
        )
        print(f"{name:>15} | " + " | ".join(f"{v:>8}" for v in row))
    saved = 0
    for name, t in results.items():
        groups: dict[tuple[str, str, str], list[Failure]] = {}
        for f in t.failures:
            groups.setdefault(f.key, []).append(f)
        for key, failures in sorted(groups.items()):
            print(f"\n{name}: {len(failures)} x {key[1]} {key[2]}")
            for f in failures[: args.show]:
                print(f"  op {f.call} ({f.op}): {f.detail.strip()[:300]}")
                for e in f.entries[-3:]:
                    when = "before" if e.at_ns < f.started else "during"
                    print(f"    <- ({when}) journal #{e.seq} {e.summary()}")
                if not f.entries:
                    print("    <- no hostile answer to this client in the operation's window")
                if args.save and f.entries:
                    saved += _save(Path(args.save), f, scenarios[name])
    if args.save:
        print(f"\n{saved} replay files in {args.save}")


def _save(folder: Path, f: Failure, scenario: dict[str, Any]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    stem = "-".join(filter(None, (f.client, f.outcome, f.exception, f.code))).lower()
    path = folder / f"{stem}.json"
    if path.exists():
        return 0
    data = {
        "scenario": scenario,
        "client": f.client,
        "operation": f.op,
        "call": f.call,
        "outcome": f.outcome,
        "exception": f.exception,
        "detail": f.detail.strip()[:500],
        "journal": [e.to_json() for e in f.entries[-3:]],
    }
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--watchdog", type=float, default=20.0)
    ap.add_argument("--clients", default="kafka-python,confluent-kafka,grpcio")
    ap.add_argument("--save", default="")
    ap.add_argument("--show", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, Tally] = {}
    scenarios: dict[str, Any] = {}
    for name in args.clients.split(","):
        if name == "grpcio":
            scenario, ops_cls, where = grpc_scenario(args.seed, args.rate), GrpcioOps, "shop"
            scenarios[name] = {"file": SHOP, "overrides": grpc_overrides(args.seed, args.rate)}
        elif name in ("kafka-python", "confluent-kafka"):
            scenario = kafka_scenario(args.seed, args.rate)
            ops_cls = KafkaPythonOps if name == "kafka-python" else ConfluentOps
            where = "kafka"
            scenarios[name] = scenario
        else:
            sys.exit(f"unknown client {name!r}")
        with TestbedThread(scenario) as tb:
            print(f"{name}: {args.seconds:g} s against {tb.address(where)}", flush=True)
            results[name] = run_client(ops_cls, tb, tb.address(where), args)
    report(results, args, scenarios)


if __name__ == "__main__":
    main()
