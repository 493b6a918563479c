"""The real lab for integration tests: started once per session, never skipped."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from telephony.archive import db
from telephony.lab.lab import Lab
from telephony.lab.private_redis import private_redis


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


@pytest.fixture
def redis_server(tmp_path: Path):
    """A private redis-server (no persistence) for one test; yields its URL and process."""
    with private_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def scratch_dsn(lab: Lab) -> AsyncIterator[str]:
    """A scratch database on the lab's PostgreSQL (hotline_test_<random>, owned by the
    lab's `hotline` role, dropped afterwards): the lab's own `hotline` database is
    never touched."""
    name = f"hotline_test_{secrets.token_hex(6)}"
    admin = await db.connect(lab.postgres_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield urlunsplit(urlsplit(lab.postgres_dsn)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
