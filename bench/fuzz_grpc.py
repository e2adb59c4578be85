"""`protoproxy fuzz grpc` cases/s against the testbed's fake gRPC service, through the
proxy and `--direct`, side by side in one run.

Three processes: the fake (`python -m testbed.grpc`), and two fuzz runs started
together with the same seed, one through its in-process proxy and one
`--direct`, each for `--seconds`, so both see the same machine load. They draw
from `fixtures/fuzz/testbed/testbed_fuzz.proto` (the fake's service without its
behaviour program, which would make it fail on order). Prints cases/s of each,
their ratio (the proxy's cost per case: drawing dominates, so expect near 1),
and exits 1 if either run found a failure (a false alarm, or a real bug).

    python bench/fuzz_grpc.py [--seconds 60] [--seed 1] [--sequential]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "codecs"), str(ROOT)]  # this checkout, not an install

from common import free_port, fuzz_summary, process, wait_port  # noqa: E402

PROTO = ROOT / "fixtures" / "fuzz" / "testbed" / "testbed_fuzz.proto"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "codecs"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _fuzz(
    target: str, out: Path, seconds: float, seed: int, direct: bool
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "protoproxy", "fuzz", "grpc", "--target", target]
    args += ["--proto", str(PROTO), "--seconds", f"{seconds:g}", "--seed", str(seed)]
    args += ["--out", str(out), "--quiet", *(["--direct"] if direct else [])]
    return subprocess.Popen(args, env=_env(), cwd=ROOT, stderr=subprocess.PIPE)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sequential", action="store_true", help="one run after the other")
    args = p.parse_args()
    port = free_port()
    fake = [sys.executable, "-m", "testbed.grpc", "--port", str(port)]
    with process(fake, env=_env(), cwd=ROOT), tempfile.TemporaryDirectory() as d:
        wait_port(port, timeout=60)
        target = f"127.0.0.1:{port}"
        runs = {"proxy": Path(d) / "proxy", "direct": Path(d) / "direct"}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, out in runs.items():
            procs[name] = _fuzz(target, out, args.seconds, args.seed, name == "direct")
            if args.sequential:
                procs[name].wait()
        errors = {name: proc.communicate()[1].decode() for name, proc in procs.items()}
        reports = {}
        for name, out in runs.items():
            path = out / "report.json"
            if not path.exists():
                print(f"{name}: no report (exit {procs[name].returncode})\n{errors[name]}")
                return 2
            reports[name] = json.loads(path.read_text())
    mode = "one after the other" if args.sequential else "side by side"
    failed = fuzz_summary(reports, f"{mode}, {args.seconds:g} s each")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
