"""``python -m testbed.grpc`` in its own process, reached by a blocking client."""

from __future__ import annotations

import signal
import subprocess
import sys

from testbed.grpc import Behaviour
from testbed.grpc.client import SyncClient


def test_standalone_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.grpc", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        word, address, transport = line.split()
        assert (word, transport) == ("listening", "h2c")
        with SyncClient.connect(address) as client:
            result = client.server_stream(Behaviour(count=3), timeout=10)
        assert result.ok and len(result.responses) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testbed.grpc", "--cert", "x.pem"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--cert and --key" in done.stderr
