"""The archive's PostgreSQL: connections and the schema migrations.

Migrations are the files `migrations/NNN_<name>.sql` beside this module, applied
in number order, each in its own transaction, and recorded by number in
`schema_migrations`. Every service runs `migrate` at start; a transaction-scoped
advisory lock makes two services starting at once apply each file once (the
second waits, then finds it applied). A migration therefore must not use
statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_FILE = re.compile(r"^(?P<number>\d{3,})_[^/]*\.sql$")
# pg_advisory_xact_lock key for migrations: b"hotlmigr" as a signed 64-bit integer.
MIGRATION_LOCK = int.from_bytes(b"hotlmigr", "big", signed=True)

SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text        PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str  # the file's number, three digits or more: "001"
    path: Path


def pending_migrations(files: Iterable[Path], applied: Iterable[str]) -> list[Migration]:
    """The migrations among `files` whose version is not in `applied`, in number order.

    Names that are not NNN_<name>.sql are ignored (notes, editor backups); two
    files with the same number are refused, whichever is applied already.
    """
    by_number: dict[int, Path] = {}
    for path in files:
        match = MIGRATION_FILE.match(path.name)
        if not match:
            continue
        number = int(match["number"])
        if number in by_number:
            twins = sorted((by_number[number].name, path.name))
            raise MigrationError(f"two migrations numbered {number:03d}: {twins[0]}, {twins[1]}")
        by_number[number] = path
    done = set(applied)
    return [Migration(f"{n:03d}", by_number[n]) for n in sorted(by_number)
            if f"{n:03d}" not in done]


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file())


async def connect(dsn: str, *, within: float = 10.0) -> asyncpg.Connection:
    """One session (e.g. postgresql://hotline:<password>@127.0.0.1:15432/hotline)."""
    return await asyncpg.connect(dsn, timeout=within)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4,
                      within: float = 10.0) -> asyncpg.Pool:
    """A connection pool for a service's archive writes and searches."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=within)


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration in `directory` not applied yet; the versions applied now.

    Each file runs in its own transaction with its `schema_migrations` row, under
    the migration lock; the applied set is read again under the lock each time,
    so a concurrent `migrate` never applies a file twice. A failing file is
    rolled back (the ones before it stay) and raised as MigrationError.
    """
    files = migration_files(directory)
    pending_migrations(files, ())  # refuse duplicate numbers before touching anything
    applied_now: list[str] = []
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(SCHEMA_MIGRATIONS)
            applied = [r["version"] for r in await conn.fetch("SELECT version FROM "
                                                              "schema_migrations")]
            todo = pending_migrations(files, applied)
            if not todo:
                return applied_now
            step = todo[0]
            try:
                await conn.execute(step.path.read_text(encoding="utf-8"))
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{step.path.name}: {exc}") from exc
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)",
                               step.version)
        applied_now.append(step.version)
