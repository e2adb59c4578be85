"""The user's fakes run in a child process: the testbed's (the proxy's) process
loads neither grpcio nor protoc (protobuf's runtime it has anyway: the proxy's
own codecs use it), and the child never outlives its parent."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.testbed.test_isolation import DEADLINE, _env, _gone, _wait_gone

from .conftest import only_grpc, shop_service


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_no_grpc_in_the_parent_and_the_child_dies_with_it(how: signal.Signals) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        from testbed.harness import Testbed
        from testbed.scenario import resolve_scenario

        async def main():
            sc = resolve_scenario(json.loads({json.dumps(json.dumps(only_grpc(shop_service())))}))
            async with Testbed(sc.with_ephemeral_ports()) as tb:
                loaded = [m for m in ("grpc", "grpc_tools", "grpc_reflection") if m in sys.modules]
                print(tb.services["grpc.fakes"].pid, json.dumps(loaded), flush=True)
                await asyncio.Event().wait()

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=_env(), text=True
    )
    try:
        assert parent.stdout is not None
        child_pid, loaded = parent.stdout.readline().split(" ", 1)
        assert json.loads(loaded) == []
        assert not _gone(int(child_pid))
        parent.send_signal(how)
        parent.wait(DEADLINE)
        assert _wait_gone(int(child_pid))
    finally:
        parent.kill()
        parent.wait()
