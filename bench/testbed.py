"""The testbed's gRPC fakes: stubbed unary calls/s and start-up with many protos and stubs.

    python bench/testbed.py [--rounds 2] [--seconds 3] [--concurrency 8]
                            [--services 20] [--stubs 10] [--no-http] [--http-args "..."]

Peers side by side in every round, so the shared machine's load falls on all:

- **calls/s**: grpc.aio unary calls through the proxy, `--concurrency` in
  flight on one channel, for `--seconds` after a warm-up, against
  - the fixed demo TestService (`Unary`, answered by its behaviour program),
  - the user fake of the shop fixture (`shop.v1.Catalog/GetItem`, answered by
    its GripMock stub; fixtures/grpc_fakes/shop), when the fixture is there,
  - the generated fake below (the last service's `Get`, whose stub is the last
    of its ten: the matcher walks them all).
  One client for all three: a generic channel sending pre-encoded request
  bytes, so no peer pays for a codegen'd class the others do not. Not h2load
  (bench/h2_proxy.py's gRPC-shaped POSTs): it counts an HTTP 200 as a
  success, and a gRPC fake answers a call no stub matches with 200 and a
  non-OK grpc-status in the trailers, which only a gRPC client sees.
- **start-up**: a scenario generated into a temp dir at bench start, with
  `--services` .proto files (one service each, all importing one shared
  common.proto through `import_paths`) and `--stubs` GripMock stubs per
  service (200 by default), against the demo scenario. Two clocks:
  - CLI: from spawning `protoproxy testbed SCENARIO` to the first answered
    call through the proxy (interpreter start and imports included: what a
    user at a terminal waits);
  - TestbedThread: from `TestbedThread(...).start()` in this process, modules
    already imported, to the first answered call (what the pytest fixture pays).
  The goal (issue 13): under 2 s for 20 protos and 200 stubs.

Ratios are printed against the demo TestService. Calls that end non-OK are
counted and shown, not asserted: a bench measures, the tests judge.

The HTTP half (WireMock-format requests/s) lives in bench/testbed_http.py; when
that file is present it runs after this one (its `main()`, with `--http-args`
as its command line), unless `--no-http`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "codecs"), str(ROOT / "bench")]

import grpc  # noqa: E402
import yaml  # noqa: E402
from common import table  # noqa: E402
from grpc import aio  # noqa: E402

from testbed.grpc.protos import testbed_pb2 as demo_pb  # noqa: E402
from testbed.threaded import TestbedThread  # noqa: E402

SHOP_DIR = ROOT / "fixtures" / "grpc_fakes" / "shop"
HTTP_HALF = ROOT / "bench" / "testbed_http.py"
#: every scenario: only gRPC (the demo or the user's services) and the proxy, on
#: ephemeral ports (`ports: {}`), so the bench runs next to anything
BASE = {
    "ports": {},
    "kafka": {"enabled": False},
    "http": {"enabled": False},
    "echo": {"enabled": False},
}
#: seconds a call may take before the bench gives up on it (a hang, not slowness)
CALL_TIMEOUT = 10.0
#: seconds for a testbed to come up before the bench gives up on it
START_TIMEOUT = 120.0
_LISTENER = re.compile(r"^\s+(\S+)\s+(\d+\.\d+\.\d+\.\d+:\d+)")
_CLI_ENV_PATH = f"{ROOT}:{ROOT / 'codecs'}"


@dataclass(frozen=True)
class Target:
    """One peer: a scenario, the proxy listener in front of the fake, and one call."""

    label: str
    scenario: dict[str, Any]
    listener: str
    method: str  # "/package.Service/Method"
    request: bytes


# -- the generated scenario ------------------------------------------------------------

COMMON_PROTO = """syntax = "proto3";
package bench.common.v1;

message Money {
  string currency = 1;
  int64 units = 2;
  int32 nanos = 3;
}

message Page {
  int32 size = 1;
  string token = 2;
}
"""

SERVICE_PROTO = """syntax = "proto3";
package bench.svc{n:02d}.v1;

import "bench/common.proto";

service Svc{n:02d} {{
  rpc Get(GetRequest) returns (Item);
  rpc List(ListRequest) returns (stream Item);
  rpc Put(stream Item) returns (PutReply);
  rpc Sync(stream Item) returns (stream Item);
}}

message GetRequest {{
  string id = 1;
}}

message ListRequest {{
  bench.common.v1.Page page = 1;
  repeated string tags = 2;
}}

message Item {{
  string id = 1;
  string name = 2;
  bench.common.v1.Money price = 3;
  repeated string tags = 4;
  map<string, string> labels = 5;
}}

message PutReply {{
  int32 stored = 1;
}}
"""


def _stub(n: int, k: int) -> dict[str, Any]:
    item = f"item-{n:02d}-{k}"
    return {
        "service": f"bench.svc{n:02d}.v1.Svc{n:02d}",
        "method": "Get",
        "input": {"equals": {"id": item}},
        "output": {
            "data": {
                "id": item,
                "name": f"Item {k} of service {n}",
                "price": {"currency": "EUR", "units": k + 1, "nanos": 0},
                "tags": ["bench", f"s{n}"],
                "labels": {"k": str(k)},
            }
        },
    }


def generate(root: Path, services: int, stubs: int) -> dict[str, Any]:
    """Write `services` protos and `services * stubs` GripMock stubs under `root`;
    return the scenario (as a dict, paths absolute) that serves them as one fake."""
    protos = root / "protos"
    (protos / "bench").mkdir(parents=True)
    (protos / "bench" / "common.proto").write_text(COMMON_PROTO)
    stub_dir = root / "stubs"
    stub_dir.mkdir()
    files = []
    for n in range(services):
        path = protos / f"svc{n:02d}.proto"
        path.write_text(SERVICE_PROTO.format(n=n))
        files.append(str(path))
        (stub_dir / f"svc{n:02d}.yaml").write_text(
            yaml.safe_dump([_stub(n, k) for k in range(stubs)], sort_keys=False)
        )
    return {
        **BASE,
        "grpc": {
            "services": [
                {
                    "name": "gen",
                    "protos": files,
                    "import_paths": [str(protos)],
                    "stubs": [str(stub_dir)],
                }
            ]
        },
    }


def _string_field(number: int, value: str) -> bytes:
    """A length-delimited protobuf field (short strings: a one-byte length)."""
    data = value.encode()
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def generated_target(scenario: dict[str, Any], services: int, stubs: int) -> Target:
    n, k = services - 1, stubs - 1
    return Target(
        label=f"generated fake ({services * stubs} stubs)",
        scenario=scenario,
        listener="gen",
        method=f"/bench.svc{n:02d}.v1.Svc{n:02d}/Get",
        request=_string_field(1, f"item-{n:02d}-{k}"),
    )


# -- the demo and the shop fixture -----------------------------------------------------


def demo_target() -> Target:
    return Target(
        label="demo TestService",
        scenario=dict(BASE),
        listener="grpc",
        method="/protoproxy.testbed.v1.TestService/Unary",
        request=demo_pb.Request(tag="bench").SerializeToString(),
    )


def shop_target() -> Target | str:
    """The shop fixture's GetItem with the request of its first `equals` stub,
    or why it cannot be benched (the fixture is another engineer's)."""
    scenario_file = SHOP_DIR / "scenario.yaml"
    if not scenario_file.exists():
        return f"{scenario_file.relative_to(ROOT)} is missing"
    from testbed.scenario import load_scenario

    service = load_scenario(scenario_file).grpc.services[0]
    request = _first_equals(service.stubs, "GetItem")
    if request is None:
        return "no GetItem stub with input.equals in the shop fixture"
    encoded = _encode(service.protos, service.import_paths, "shop.v1.Catalog", "GetItem", request)
    return Target(
        label="shop fake (GetItem)",
        scenario={**BASE, "grpc": {"services": [{**service.model_dump(mode="json"), "port": 0}]}},
        listener=service.name,
        method="/shop.v1.Catalog/GetItem",
        request=encoded,
    )


def _first_equals(stub_paths: list[Path], method: str) -> dict[str, Any] | None:
    files = []
    for path in stub_paths:
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file.suffix not in (".yaml", ".yml", ".json"):
            continue
        docs = yaml.safe_load(file.read_text())
        for stub in docs if isinstance(docs, list) else [docs]:
            if isinstance(stub, dict) and stub.get("method") == method:
                equals = (stub.get("input") or {}).get("equals")
                if isinstance(equals, dict):
                    return equals
    return None


def _encode(
    protos: list[Path], imports: list[Path], service: str, method: str, data: dict[str, Any]
) -> bytes:
    """`data` (protobuf JSON) as the method's request bytes, compiled from the
    .proto files the way the fake compiles them (testbed.grpc_fakes.schema)."""
    from google.protobuf import json_format

    from testbed.grpc_fakes.schema import from_protos

    found = from_protos(protos, imports).find_method(service, method)
    if found is None:
        raise SystemExit(f"{service}/{method} is not in {protos}")
    return json_format.ParseDict(data, found.input()).SerializeToString()


# -- measuring ----------------------------------------------------------------------------


def _call(channel: grpc.Channel, target: Target) -> None:
    """One blocking call; raises grpc.RpcError unless it ends OK."""
    ident: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    channel.unary_unary(target.method, ident, ident)(target.request, timeout=CALL_TIMEOUT)


def first_answer(channel: grpc.Channel, target: Target) -> None:
    """Call until the first OK answer: the listener may accept before the fake
    behind it serves (that gap is part of the start-up being measured)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            _call(channel, target)
            return
        except grpc.RpcError as err:
            if err.code() is not grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:  # type: ignore[attr-defined]
                raise SystemExit(f"{target.label}: first call failed: {err}") from None


def thread_start(target: Target) -> float:
    """Seconds from TestbedThread.start() to the first answered call."""
    tb = TestbedThread(target.scenario)
    started = time.perf_counter()
    tb.start()
    try:
        with grpc.insecure_channel(tb.addresses[target.listener]) as channel:
            first_answer(channel, target)
            return time.perf_counter() - started
    finally:
        tb.stop()


def cli_start(target: Target, tmp: Path) -> tuple[subprocess.Popen[str], float, str]:
    """A running `protoproxy testbed`, seconds from spawn to the first answered
    call, and the address of the target's listener."""
    path = tmp / f"{target.listener}.yaml"
    path.write_text(yaml.safe_dump(target.scenario))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "protoproxy", "testbed", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": _CLI_ENV_PATH},
    )
    assert proc.stdout is not None
    addresses: dict[str, str] = {}
    for line in proc.stdout:
        if match := _LISTENER.match(line):
            addresses[match.group(1)] = match.group(2)
        if line.startswith("Press Ctrl-C"):
            break
    else:
        raise SystemExit(f"{target.label}: protoproxy testbed exited with {proc.wait()}")
    address = addresses[target.listener]
    with grpc.insecure_channel(address) as channel:
        first_answer(channel, target)
    return proc, time.perf_counter() - started, address


def stop_cli(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def calls_per_second(
    address: str, target: Target, seconds: float, concurrency: int
) -> tuple[float, int]:
    """(OK calls/s, non-OK calls) of `concurrency` workers on one channel."""
    ident: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    async with aio.insecure_channel(address) as channel:
        call = channel.unary_unary(target.method, ident, ident)
        for _ in range(100):  # warm-up: connection, HPACK tables, the proxy's code paths
            await call(target.request, timeout=CALL_TIMEOUT)
        ok = failed = 0
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while time.perf_counter() < end:
                try:
                    await call(target.request, timeout=CALL_TIMEOUT)
                    ok += 1
                except aio.AioRpcError:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok / (time.perf_counter() - started), failed


def build_phases(target: Target, runs: int = 3) -> dict[str, float]:
    """Median seconds of each phase of building the fakes (schema compile, stub
    files read and checked), in this process: where the start-up goes."""
    from testbed.grpc_fakes.fakes import FakeSet

    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        fakes = FakeSet.build(target.scenario["grpc"]["services"], lambda _entry: None)
        for phase, seconds in fakes.timings.items():
            phases.setdefault(phase, []).append(seconds)
    return {phase: statistics.median(v) for phase, v in phases.items()}


# -- the run ----------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_http_half(args: argparse.Namespace) -> None:
    """bench/testbed_http.py's main(), when that file exists (engineer wmservice's)."""
    if args.no_http:
        return
    if not HTTP_HALF.exists():
        print(f"\nHTTP half: {HTTP_HALF.relative_to(ROOT)} is not there yet; skipped")
        return
    spec = importlib.util.spec_from_file_location("testbed_http", HTTP_HALF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up there
    spec.loader.exec_module(module)
    print("\nHTTP half (bench/testbed_http.py):", flush=True)
    argv, sys.argv = sys.argv, [str(HTTP_HALF), *shlex.split(args.http_args)]
    try:
        module.main()
    finally:
        sys.argv = argv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--services", type=int, default=20, choices=range(1, 100))
    ap.add_argument("--stubs", type=int, default=10, choices=range(1, 1000), metavar="1..999")
    ap.add_argument("--no-http", action="store_true", help="skip bench/testbed_http.py")
    ap.add_argument("--http-args", default="", help="command line for bench/testbed_http.py")
    args = ap.parse_args()
    # A TestbedThread stops while grpcio still holds the bench channel's socket
    # (grpcio closes it in the background): the proxy's warning about it is noise here.
    logging.getLogger("protoproxy.connection").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gen = generated_target(
            generate(tmp / "gen", args.services, args.stubs), args.services, args.stubs
        )
        shop = shop_target()
        targets = [demo_target(), *([shop] if isinstance(shop, Target) else []), gen]
        if isinstance(shop, str):
            print(f"shop fake not benched: {shop}")
        results: dict[str, dict[str, list[float]]] = {
            t.label: {"cli": [], "thread": [], "rate": [], "failed": []} for t in targets
        }
        thread_start(targets[0])  # import everything once, for the TestbedThread clock
        for r in range(args.rounds):
            for target in targets:
                proc, startup, address = cli_start(target, tmp)
                try:
                    rate, failed = asyncio.run(
                        calls_per_second(address, target, args.seconds, args.concurrency)
                    )
                finally:
                    stop_cli(proc)
                thread = thread_start(target)
                row = results[target.label]
                row["cli"].append(startup)
                row["thread"].append(thread)
                row["rate"].append(rate)
                row["failed"].append(failed)
                print(
                    f"round {r + 1} {target.label:<28} CLI start {startup:.2f} s  "
                    f"TestbedThread start {thread:.2f} s  unary {rate:,.0f}/s"
                    + (f"  ({failed} failed)" if failed else ""),
                    flush=True,
                )
        build = build_phases(gen)  # before the generated files go

    med = {label: {k: _median(v) for k, v in d.items()} for label, d in results.items()}
    demo = med[targets[0].label]
    rows: list[tuple[str, ...]] = [
        (
            "median",
            "unary/s",
            "vs demo",
            "failed",
            "CLI start s",
            "vs demo",
            "thread start s",
            "vs demo",
        )
    ]
    for target in targets:
        m = med[target.label]
        rows.append(
            (
                target.label,
                f"{m['rate']:,.0f}",
                f"{m['rate'] / demo['rate']:.2f}",
                f"{sum(results[target.label]['failed']):.0f}",
                f"{m['cli']:.2f}",
                f"{m['cli'] / demo['cli']:.2f}",
                f"{m['thread']:.2f}",
                f"{m['thread'] / demo['thread']:.2f}",
            )
        )
    print()
    print(
        f"{args.rounds} rounds, {args.seconds:g} s of calls each, "
        f"{args.concurrency} in flight; start = to the first answered call"
    )
    print(table(rows))
    g = med[gen.label]
    print(
        f"\nstart-up with {args.services} protos and {args.services * args.stubs} stubs: "
        f"CLI {g['cli']:.2f} s, TestbedThread {g['thread']:.2f} s (goal: under 2 s)"
    )
    phases = ", ".join(f"{k} {v:.3f} s" for k, v in build.items())
    print(f"  of which building the fakes (in this process, median of 3): {phases}")
    run_http_half(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
