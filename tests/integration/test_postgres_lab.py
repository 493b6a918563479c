"""The lab's PostgreSQL (the ticket archive) and the migration runner on it.

Each migration test gets a scratch database (the `scratch_dsn` fixture in
conftest.py): the lab's own `hotline` database is never touched.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import asyncpg
import pytest

from telephony.archive import db
from telephony.lab.lab import Lab
from telephony.lab.private_postgres import answers, private_postgres
from telephony.lab.topology import POSTGRES_PORT

ARCHIVE_TABLES = {"archive_tickets", "archive_calls", "archive_legs", "archive_transfers",
                  "archive_conferences", "archive_steps"}


async def _tables(dsn: str) -> set[str]:
    conn = await db.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_lab_postgres_answers_on_loopback_with_the_labs_dsn(lab: Lab) -> None:
    dsn = urlsplit(lab.postgres_dsn)
    assert (dsn.scheme, dsn.username, dsn.hostname, dsn.port, dsn.path) == (
        "postgresql", "hotline", "127.0.0.1", POSTGRES_PORT, "/hotline")
    conn = await db.connect(lab.postgres_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS who, current_database() AS db, version() AS version,"
            " inet_server_addr()::text AS addr, inet_server_port() AS port,"
            " current_setting('fsync') AS fsync, current_setting('listen_addresses') AS listen,"
            " (SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user) AS createdb,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super,"
            " pg_encoding_to_char((SELECT encoding FROM pg_database"
            "                      WHERE datname = current_database())) AS encoding")
    finally:
        await conn.close()
    assert (row["who"], row["db"]) == ("hotline", "hotline")
    assert row["version"].startswith("PostgreSQL 15."), row["version"]
    assert (row["addr"], row["port"]) == ("127.0.0.1/32", POSTGRES_PORT)
    assert (row["fsync"], row["listen"], row["encoding"]) == ("on", "127.0.0.1", "UTF8")
    assert row["createdb"] and not row["super"]
    # A password is required over TCP, and the superuser cannot log in there at all.
    wrong = lab.postgres_dsn.replace(f":{dsn.password}@", ":wrong-password@")
    assert not await answers(wrong)
    assert not await answers(f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/postgres")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


def test_lab_status_lists_postgres_by_pid(lab: Lab) -> None:
    rec = lab.state.procs()["postgres"]
    assert f"-D {lab.postgres.data}" in open(f"/proc/{rec.pid}/cmdline", "rb").read().replace(
        b"\0", b" ").decode()
    ok, lines = lab.status()
    assert ok, lines
    assert any(ln.split()[:4] == ["postgres", "pid", str(rec.pid), "up"] for ln in lines), lines
    # A second up keeps the running cluster (same PID) and is quick.
    t0 = time.monotonic()
    lab.up()
    assert lab.state.procs()["postgres"].pid == rec.pid
    assert time.monotonic() - t0 < 15


ALL_VERSIONS = [m.version for m in db.pending_migrations(db.migration_files(), [])]


async def test_migrate_applies_each_file_once_and_creates_the_archive_tables(
        scratch_dsn: str) -> None:
    assert await _tables(scratch_dsn) == set()
    assert ALL_VERSIONS[:2] == ["001", "002"]
    conn = await db.connect(scratch_dsn)
    try:
        assert await db.migrate(conn) == ALL_VERSIONS
        assert await db.migrate(conn) == []
        rows = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    finally:
        await conn.close()
    assert sorted(r["version"] for r in rows) == ALL_VERSIONS
    assert rows[0]["applied_at"] is not None
    assert await _tables(scratch_dsn) == ARCHIVE_TABLES | {"schema_migrations"}


async def test_two_services_migrating_at_once_apply_each_file_once(scratch_dsn: str) -> None:
    conns = [await db.connect(scratch_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    # Each file applied by exactly one of them (which one is a race).
    applied = [v for result in results for v in result]
    assert sorted(applied) == ALL_VERSIONS
    assert ARCHIVE_TABLES <= await _tables(scratch_dsn)


async def test_a_failing_migration_is_rolled_back_and_named(scratch_dsn: str, tmp_path) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE first_one (id int PRIMARY KEY);")
    (tmp_path / "002_bad.sql").write_text(
        "CREATE TABLE half_made (id int);\nINSERT INTO no_such_table VALUES (1);")
    conn = await db.connect(scratch_dsn)
    try:
        with pytest.raises(db.MigrationError, match=r"002_bad\.sql"):
            await db.migrate(conn, tmp_path)
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert versions == ["001"]
    assert await _tables(scratch_dsn) == {"first_one", "schema_migrations"}


def test_a_private_cluster_starts_cold_in_a_few_seconds_and_stops_after() -> None:
    """The same initdb and start as the lab's cluster, from nothing (the lab's is warm)."""
    t0 = time.monotonic()
    with private_postgres() as (dsn, proc):
        assert time.monotonic() - t0 < 10, "a cold initdb must stay fast"
        assert asyncio.run(answers(dsn))
        assert urlsplit(dsn).hostname == "127.0.0.1"
    assert proc.poll() is not None
    assert not asyncio.run(answers(dsn))
