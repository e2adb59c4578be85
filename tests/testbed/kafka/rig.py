"""A Testbed from a scenario file on a background loop, for blocking clients (kcat,
confluent-kafka, kafka-python) in the test thread, plus what the outputs hold."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from testbed.harness import Testbed
from testbed.scenario import Scenario, load_scenario
from tests.peers import ServiceThread

FIXTURES = Path(__file__).parent / "fixtures"
SCENARIO = FIXTURES / "sasl_seeds.yaml"
ALICE, ALICE_PASSWORD = "alice", "al1ce-Pa55-w0rd-7f3e"
BOB, BOB_PASSWORD = "bob", "b0b-secret-91c2"
WRONG_PASSWORD = "wr0ng-Pa55-0b9d"
DEADLINE = 60


class TestbedThread(ServiceThread):
    """`with TestbedThread() as tb:` the scenario's testbed, every port ephemeral."""

    __test__ = False

    def __init__(self, scenario: Path | Scenario = SCENARIO) -> None:
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        sc = sc.with_ephemeral_ports()
        super().__init__(lambda: Testbed(sc))

    @property
    def tb(self) -> Testbed:
        return self.service  # type: ignore[no-any-return]

    @property
    def bootstrap(self) -> str:
        return self.tb.addresses["kafka"]

    @property
    def admin_url(self) -> str:
        return "http://" + self.tb.addresses["admin"]

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.admin_url + path, timeout=10) as resp:
            return str(resp.read().decode())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.admin_url + path,
            data=json.dumps(body).encode() if not isinstance(body, bytes) else body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def flush_access_log(self) -> None:
        app = self.tb.app
        assert app is not None
        self.run(app.observe.access_log.flush)


def sasl_flags(mechanism: str, user: str, password: str) -> list[str]:
    return [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        f"sasl.mechanisms={mechanism}",
        "-X",
        f"sasl.username={user}",
        "-X",
        f"sasl.password={password}",
    ]


def kcat(
    tool: str, bootstrap: str, *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [tool, "-b", bootstrap, *args],
        input=stdin,
        capture_output=True,
        timeout=DEADLINE,
        check=check,
    )


def confluent_sasl(bootstrap: str, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
