"""The real lab for integration tests: started once per session, never skipped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.lab.lab import Lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    lab = Lab()
    with lab.exclusive():
        try:
            lab.up(timeout=90)
        except Exception as exc:  # the lab is required: fail, never skip
            pytest.fail(f"the lab could not start: {exc}", pytrace=False)
        yield lab


@pytest.fixture(autouse=True)
def no_leftover_calls(request: pytest.FixtureRequest):
    """After each integration test, hang up any channel it left behind.

    SIPp peers killed mid-call send no BYE, and lab endpoints have no RTP
    timeout, so such a channel would keep an agent "in use" for the next test.
    """
    yield
    if "lab" in request.fixturenames:
        lab: Lab = request.getfixturevalue("lab")
        for platform in ("12345", "110"):
            lab.asterisk_cli(platform, "channel request hangup all")


REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path: Path):
    """A private redis-server (no persistence) for one test; yields its URL and process."""
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    os.kill(proc.pid, signal.SIGCONT)  # in case a test left it stopped
    proc.terminate()
    proc.wait(10)
