"""The archive's migration runner, pure parts: which files are pending, in what order."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from telephony.archive.db import (
    MIGRATION_LOCK,
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    migration_files,
    pending_migrations,
)

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE_TABLES = {"archive_tickets", "archive_calls", "archive_legs", "archive_transfers",
                  "archive_conferences", "archive_steps"}


def _paths(*names: str) -> list[Path]:
    return [Path("/m") / n for n in names]


def test_pending_are_ordered_by_number_not_by_name() -> None:
    files = _paths("010_later.sql", "002_b.sql", "001_archive.sql", "1000_far.sql")
    assert pending_migrations(files, []) == [
        Migration("001", Path("/m/001_archive.sql")), Migration("002", Path("/m/002_b.sql")),
        Migration("010", Path("/m/010_later.sql")), Migration("1000", Path("/m/1000_far.sql")),
    ]


def test_applied_versions_are_left_out_and_up_to_date_is_empty() -> None:
    files = _paths("001_archive.sql", "002_b.sql", "003_c.sql")
    assert [m.version for m in pending_migrations(files, {"001", "003"})] == ["002"]
    assert pending_migrations(files, ["001", "002", "003"]) == []
    # A version applied by a newer checkout (no file here) is no reason to fail.
    assert pending_migrations(files[:1], ["001", "002"]) == []


def test_names_that_are_not_migrations_are_ignored() -> None:
    files = _paths("README.md", "001_archive.sql~", ".#001_archive.sql", "01_short.sql",
                   "abc_x.sql", "002.sql", "003_x.SQL", "004_x.sql.bak", "005_ok.sql")
    assert [m.version for m in pending_migrations(files, [])] == ["005"]


def test_duplicate_numbers_are_refused_with_both_names() -> None:
    files = _paths("001_archive.sql", "002_a.sql", "002_b.sql")
    with pytest.raises(MigrationError,
                       match=r"two migrations numbered 002: 002_a\.sql, 002_b\.sql"):
        pending_migrations(files, [])
    # Even when that number counts as applied, and when written with more digits.
    with pytest.raises(MigrationError, match="numbered 002"):
        pending_migrations(files, ["001", "002"])
    with pytest.raises(MigrationError, match="numbered 001"):
        pending_migrations(_paths("001_a.sql", "0001_a.sql"), [])


def test_001_archive_is_the_first_migration_and_creates_the_archive_tables() -> None:
    assert [m.version for m in pending_migrations(migration_files(), [])][:1] == ["001"]
    sql = (MIGRATIONS_DIR / "001_archive.sql").read_text(encoding="utf-8")
    code = re.sub(r"--[^\n]*", "", sql)  # comments may say anything
    statements = [s.strip() for s in code.split(";") if s.strip()]
    assert all(re.match(r"CREATE (TABLE|INDEX) ", s) for s in statements), statements
    tables = set(re.findall(r"CREATE TABLE (\w+)", code))
    assert tables == ARCHIVE_TABLES
    # Every index is on one of those tables; no transaction control inside a migration
    # (the runner wraps each file in its own transaction).
    assert set(re.findall(r"CREATE INDEX \w+ ON (\w+)", code)) <= tables
    assert not re.search(r"\b(BEGIN|COMMIT|ROLLBACK|CONCURRENTLY)\b", code, re.IGNORECASE)
    assert code.count("(") == code.count(")")


def test_migrations_ship_with_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = data["package-data"]["telephony"]
    assert any(Path("telephony/archive/migrations/001_archive.sql").match(f"telephony/{g}")
               for g in globs), globs
    assert -(1 << 63) <= MIGRATION_LOCK < (1 << 63)  # a bigint for pg_advisory_xact_lock
