"""Instructions per HTTP/2 request on the Connection path, counted by callgrind.

Wall-clock figures on the shared 2-core machine move by 5-10 % from run to
run, which hides a cost of that size; `valgrind --tool=callgrind` counts the
instructions executed, the same whatever else the machine is doing. This runs
bench/h2_decode.py's replay of one recorded h2load connection (`--conversation`,
recorded once and cached under /tmp) through a real Connection, under
callgrind, for each tree given, and subtracts a run with no reads (imports
and App construction) so that what is left is the per-request work:

    python bench/instructions.py --conversation grpc TREE [TREE...]

TREE is a checkout of this repository (e.g. `git worktree add /tmp/old cb313dc`).
Needs valgrind. Python's hash seed is fixed, so a tree gives the same count twice.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DRIVER = """
import pickle, sys
sys.path.insert(0, sys.argv[1] + "/bench")
import h2_decode
chunks = pickle.loads(open(sys.argv[2], "rb").read())
h2_decode.replay(chunks[: int(sys.argv[3])], False)
"""


def instructions(tree: Path, recording: Path, reads: int) -> int:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as d:
        driver = Path(d) / "driver.py"
        driver.write_text(DRIVER)
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=f"{tree}:{tree}/codecs")
        out = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={d}/cg.out",
             os.path.realpath(sys.executable), str(driver), str(tree), str(recording), str(reads)],
            env=env, capture_output=True, text=True, timeout=3600, cwd=tree,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"callgrind gave no count for {tree}:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversation", choices=["get", "grpc"], default="grpc")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("trees", nargs="+", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import h2_decode

    chunks = h2_decode.conversation(args.conversation, args.requests)
    recording = Path(f"/tmp/protoproxy-h2-{args.conversation}-{args.requests}.pickle")
    if not recording.exists():
        recording.write_bytes(pickle.dumps(chunks))
    first = None
    print(f"{args.conversation}: {args.requests} requests, {len(chunks)} reads")
    for tree in args.trees:
        tree = tree.resolve()
        per = (
            instructions(tree, recording, len(chunks)) - instructions(tree, recording, 0)
        ) / args.requests
        ratio = "" if first is None else f"  {per / first:.3f}x the first"
        first = first or per
        print(f"  {tree}: {per:,.0f} instructions per request{ratio}")


if __name__ == "__main__":
    main()
