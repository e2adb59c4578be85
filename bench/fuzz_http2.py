"""`protoproxy fuzz http2` against nghttpd, through the proxy and --direct, side by side.

    python bench/fuzz_http2.py [--seconds 60] [--seed 1]

Both runs go at once, against one nghttpd (cleartext, prior knowledge, an empty
docroot so every request is a full 404 answer), each in its own process with
its own seed-derived rounds, `--keep-going` so a failure does not end one
run early: they share the machine's load alike. Prints each
run's cases/s and the proxy/direct ratio: what putting protoproxy's passive
HTTP/2 codec in the loop costs the fuzzer (hypothesis' generation and shrinking
usually dominate). Exits 1 if either run found a failure (its replay files are
listed), 2 if a run did not finish.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, fuzz_summary, need, process, wait_port


def fuzz(port: int, out: Path, seconds: float, seed: int, direct: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "protoproxy", "fuzz", "http2", "--target", f"127.0.0.1:{port}"]
    args += [
        "--out",
        str(out),
        "--seconds",
        str(seconds),
        "--seed",
        str(seed),
        "--quiet",
        "--keep-going",
    ]
    if direct:
        args.append("--direct")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    nghttpd = need("nghttpd")
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "docs").mkdir()
        cmd = [nghttpd, "--no-tls", "-a", "127.0.0.1", "-d", str(root / "docs"), str(port)]
        with process(cmd):
            wait_port(port)
            runs = {
                "proxy": fuzz(port, root / "proxy", args.seconds, args.seed, direct=False),
                "direct": fuzz(port, root / "direct", args.seconds, args.seed, direct=True),
            }
            codes = {name: proc.wait(args.seconds * 4 + 120) for name, proc in runs.items()}
        reports = {}
        for name in runs:
            path = root / name / "report.json"
            if not path.exists():
                print(f"{name}: no report (exit {codes[name]})", file=sys.stderr)
                return 2
            reports[name] = json.loads(path.read_text())
        failed = fuzz_summary(reports)
        return 1 if failed or any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
