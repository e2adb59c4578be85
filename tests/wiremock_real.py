"""Real WireMock, for comparing the testbed's fake with it (tests and bench).

The jar comes from the npm package `wiremock` (it bundles the standalone
jar); scripts/test installs it into ``.tools/wiremock`` when ``java`` exists.
``WIREMOCK_JAR`` points at another jar. On a user's machine a missing java or
jar skips; under CI=true it fails, like every external tool (tests/tools.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
NPM_BUILD = ROOT / ".tools" / "wiremock" / "node_modules" / "wiremock" / "build"
#: How long WireMock may take to print its port (a JVM start on a busy CI box).
START_TIMEOUT_S = 120.0
_PORT_LINE = re.compile(rb"^port:\s+(\d+)\s*$")


def find_jar() -> Path | None:
    """The standalone jar: $WIREMOCK_JAR, else the newest one npm installed."""
    env = os.environ.get("WIREMOCK_JAR")
    if env:
        return Path(env) if Path(env).is_file() else None
    jars = sorted(NPM_BUILD.glob("wiremock-standalone-*.jar"))
    return jars[-1] if jars else None


def missing() -> str | None:
    """Why real WireMock cannot run here, or None when it can."""
    if shutil.which("java") is None:
        return "java is not installed (scripts/test installs WireMock only when java exists)"
    if find_jar() is None:
        return (
            "the WireMock jar is missing: npm install --prefix .tools/wiremock wiremock@3 "
            "(scripts/test does it), or set WIREMOCK_JAR"
        )
    return None


class RealWireMock:
    """`with RealWireMock(root_dir) as wm:` then HTTP to `wm.port` on 127.0.0.1.

    `root_dir` is WireMock's ``--root-dir``: its ``mappings/`` and ``__files/``.
    The port is WireMock's own choice (``--port 0``), read from the line it
    prints once it listens: no guessing, no polling.
    """

    def __init__(self, root_dir: Path, *extra: str) -> None:
        self.root_dir = root_dir
        self.extra = extra
        self.port = 0
        self.output = bytearray()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        jar = find_jar()
        java = shutil.which("java")
        if jar is None or java is None:
            raise RuntimeError(missing())
        cmd = [java, "-jar", str(jar), "--port", "0", "--bind-address", "127.0.0.1"]
        cmd += ["--root-dir", str(self.root_dir), "--disable-banner", *self.extra]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        found = threading.Event()
        thread = threading.Thread(target=self._read, args=(found,), daemon=True)
        thread.start()
        if not found.wait(START_TIMEOUT_S) or not self.port:
            self.stop()
            raise RuntimeError(
                "WireMock did not report its port:\n" + self.output.decode(errors="replace")
            )

    def _read(self, found: threading.Event) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.output += line
            m = _PORT_LINE.match(line.strip())
            if m is not None and not self.port:
                self.port = int(m.group(1))
                found.set()
        found.set()  # exited: start() reports the output

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> RealWireMock:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
