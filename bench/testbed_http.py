"""WireMock-format HTTP requests per second: the testbed's fake against real WireMock.

    python bench/testbed_http.py [--seconds 2] [--connections 16] [--root fixtures/wiremock]

The same mappings (`--root`: WireMock's root dir, ``mappings/`` and
``__files/``) are served by the testbed's fake and by real WireMock (the jar
scripts/test installs from npm; tests/wiremock_real.py), and h2load (HTTP/1.1,
`--connections` keep-alive connections, one request in flight on each) loads
each for `--seconds` after a one-second warm-up, real WireMock after a
whole discarded run besides (its JIT is still compiling after one second):

- fake, testbed: through the testbed's own proxy (one process, one loop: what
  a test pays);
- fake, direct / WireMock, direct: no proxy;
- fake, proxy / WireMock, proxy: through one `protoproxy run` in its own
  process with a listener in front of each, so the proxy's share is the same.

Prints requests/s per row and the ratios fake / WireMock. The request is the
first GET case of ``fixtures/wiremock/cases.json`` (`--path` for another).
Without java or the jar it prints the fake's rows only and says why.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "codecs")]

from common import free_port, need, protoproxy, table  # noqa: E402

from testbed.threaded import TestbedThread  # noqa: E402
from tests import wiremock_real  # noqa: E402

_RATE = re.compile(rb"finished in [\d.]+\w*, ([\d.]+) req/s")
_DONE = re.compile(rb"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed")


def first_get_path(root: Path) -> str:
    cases = json.loads((root / "cases.json").read_text())
    for case in cases if isinstance(cases, list) else cases.get("cases", []):
        req = case.get("request", {})
        if req.get("method", "GET") == "GET" and not req.get("body") and not req.get("headers"):
            return str(req.get("url") or req.get("path"))
    raise SystemExit(f"{root / 'cases.json'} has no plain GET case; pass --path")


def h2load(address: str, path: str, seconds: float, connections: int) -> float:
    """Requests per second h2load measured; exits if any request failed."""
    cmd = [need("h2load"), "--h1", "-c", str(connections), "-m", "1"]
    cmd += ["--warm-up-time", "1s", "-D", f"{max(1, round(seconds))}s", f"http://{address}{path}"]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=seconds + 60).stdout
    rate, done = _RATE.search(out), _DONE.search(out)
    if rate is None or done is None:
        raise SystemExit("h2load printed no rate:\n" + out.decode(errors="replace"))
    if int(done.group(2)):
        raise SystemExit(f"{address}{path}: {done.group(2)} requests failed")
    return float(rate.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--root", type=Path, default=ROOT / "fixtures" / "wiremock")
    ap.add_argument("--path", default=None)
    args = ap.parse_args()
    path = args.path or first_get_path(args.root)
    scenario = {
        "kafka": {"enabled": False},
        "grpc": {"enabled": False},
        "echo": {"enabled": False},
        "http": {
            "services": [{"name": "api", "mappings": [str(args.root.resolve() / "mappings")]}]
        },
    }
    rows: dict[str, float] = {}
    why_not = wiremock_real.missing()
    with TestbedThread(scenario) as tb:
        fake = "{}:{}".format(*tb.testbed.services["api"].address)
        wm = None if why_not else wiremock_real.RealWireMock(args.root.resolve())
        if wm is not None:
            wm.start()
        try:
            front = [("fake", free_port(), int(fake.rsplit(":", 1)[1]), "http")]
            if wm is not None:
                front.append(("wiremock", free_port(), wm.port, "http"))
            with protoproxy(front):
                run = lambda addr: h2load(addr, path, args.seconds, args.connections)  # noqa: E731
                rows["fake, testbed"] = run(tb.addresses["api"])
                rows["fake, direct"] = run(fake)
                rows["fake, proxy"] = run(f"127.0.0.1:{front[0][1]}")
                if wm is not None:
                    run(wm.address)  # discarded: the JVM's JIT warms up past h2load's 1 s
                    rows["WireMock, direct"] = run(wm.address)
                    rows["WireMock, proxy"] = run(f"127.0.0.1:{front[1][1]}")
        finally:
            if wm is not None:
                wm.stop()
    print(f"GET {path}, {args.connections} connections, {args.seconds:g} s each")
    print(table([("target", "req/s"), *((name, f"{rate:,.0f}") for name, rate in rows.items())]))
    if why_not:
        print(f"real WireMock not run: {why_not}")
        return
    for how in ("direct", "proxy"):
        print(f"fake / WireMock, {how}: {rows[f'fake, {how}'] / rows[f'WireMock, {how}']:.2f}")


if __name__ == "__main__":
    main()
