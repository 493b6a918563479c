"""PostgreSQL clusters of our own on loopback, from Debian's `postgresql` package.

`Cluster` is one data directory plus its unix-socket directory under a base dir:
the lab's (telephony.lab.lab: a fixed port, under the lab's state dir, kept
across runs) and throw-away ones (`private_postgres`: a free port, one test).

PostgreSQL refuses to run as root, so as root every server program runs as the
`postgres` OS user (`setpriv` execs it: the PID we record is the postmaster's
own) and the cluster's directories belong to that user. Authentication: the
superuser `postgres` may log in without a password only over the unix socket,
whose directory only its owner (and root) can enter; that is how roles and
databases are made. Over TCP (127.0.0.1 only) every role needs its password
(SCRAM).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

from telephony.lab import procs

PG_LIB = Path("/usr/lib/postgresql")
OS_USER = "postgres"  # the OS user the server runs as when we are root
SUPERUSER = "postgres"  # the cluster's superuser (initdb -U), whoever runs it
HOST = "127.0.0.1"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # role and database names we create

PG_HBA = """\
# Written by telephony/lab/private_postgres.py.
# The superuser, without a password, only over the unix socket (its directory is
# closed to everyone but the cluster's owner): used to create roles and databases.
local   all   postgres                     trust
# Everything else: TCP from 127.0.0.1 with a password (SCRAM).
host    all   all         127.0.0.1/32     scram-sha-256
"""


class PostgresError(RuntimeError):
    pass


def bin_dir(version: str | None = None) -> Path:
    """Debian's server binaries, /usr/lib/postgresql/<version>/bin: the highest
    version installed, or `version` (a cluster only runs under the version that made it)."""
    found = {p.parent.parent.name: p.parent
             for p in PG_LIB.glob("*/bin/postgres") if p.parent.parent.name.isdigit()}
    if version is not None:
        if version not in found:
            raise PostgresError(
                f"the cluster was made by PostgreSQL {version} but {PG_LIB}/{version}/bin/postgres"
                " is missing (install Debian's postgresql package: scripts/install-deps.sh)")
        return found[version]
    if not found:
        raise PostgresError(f"no PostgreSQL server in {PG_LIB}/*/bin: install Debian's "
                            "postgresql package (scripts/install-deps.sh)")
    return found[max(found, key=int)]


def _owner() -> pwd.struct_passwd | None:
    """The OS user the cluster belongs to: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresError(f"no {OS_USER!r} OS user: install Debian's postgresql package "
                            "(scripts/install-deps.sh)") from None


def dsn(role: str, password: str, database: str, port: int, host: str = HOST) -> str:
    return f"postgresql://{quote(role)}:{quote(password, safe='')}@{host}:{port}/{quote(database)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _name(name: str) -> str:
    if not _NAME.match(name):
        raise PostgresError(f"not a plain SQL name: {name!r}")
    return name


@dataclass(frozen=True)
class Cluster:
    """A cluster in `base`: data in base/data, the unix socket in base/run."""

    base: Path
    port: int

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def version(self) -> str | None:
        try:
            return (self.data / "PG_VERSION").read_text().strip()
        except OSError:
            return None

    def _own_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        owner = _owner()
        if owner:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _as_owner(self, argv: list[str]) -> list[str]:
        """argv run as the cluster's owner, from the base dir (exec, no fork: same PID)."""
        owner = _owner()
        if owner is None:
            return argv
        return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups",
                "--", "env", "-C", str(self.base), *argv]

    def init(self) -> None:
        """initdb, into a staging dir renamed into place: an interrupted init leaves no
        half-made data dir behind. Synced once with syncfs (initdb's own per-file
        fsync takes seconds)."""
        self._own_dir(self.base)
        staging = self.base / "data.init"
        shutil.rmtree(staging, ignore_errors=True)
        out = subprocess.run(self._as_owner([
            str(bin_dir() / "initdb"), "-D", str(staging), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--no-sync", "--no-instructions",
        ]), capture_output=True, text=True)
        if out.returncode != 0:
            raise PostgresError(f"initdb in {staging} failed (can the {OS_USER!r} user reach "
                                f"{self.base}?):\n{out.stdout}{out.stderr}")
        hba = staging / "pg_hba.conf"
        hba.write_text(PG_HBA)
        owner = _owner()
        if owner:
            os.chown(hba, owner.pw_uid, owner.pw_gid)
        subprocess.run(["sync", "-f", str(staging)], check=True)
        staging.rename(self.data)

    def server_argv(self) -> list[str]:
        """The postmaster in the foreground; make sure the socket dir exists first (prepare)."""
        return self._as_owner([
            str(bin_dir(self.version()) / "postgres"), "-D", str(self.data),
            "-k", str(self.socket_dir), "-c", f"listen_addresses={HOST}", "-p", str(self.port),
            "-c", "fsync=on", "-c", "unix_socket_permissions=0700",
        ])

    def prepare(self) -> None:
        """initdb if there is no cluster yet; the socket dir for a start."""
        if not self.initialised():
            self.init()
        self._own_dir(self.socket_dir)

    async def superuser(self, alive: Callable[[], bool], within: float = 30.0
                        ) -> asyncpg.Connection:
        """A superuser session over the unix socket, once the server accepts one."""
        deadline = time.monotonic() + within
        while True:
            try:
                return await asyncpg.connect(host=str(self.socket_dir), port=self.port,
                                             user=SUPERUSER, database="postgres", timeout=5)
            except (OSError, asyncpg.CannotConnectNowError) as exc:
                if not alive():
                    raise PostgresError("the server exited during start-up") from exc
                if time.monotonic() > deadline:
                    raise PostgresError(f"no connection within {within:.0f}s: {exc}") from exc
                await asyncio.sleep(0.05)

    async def bootstrap(self, role: str, password: str, database: str,
                        alive: Callable[[], bool]) -> None:
        """Role `role` (login, CREATEDB, this password) owning database `database`; idempotent."""
        conn = await self.superuser(alive)
        try:
            verb = ("ALTER" if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1",
                                                   role) else "CREATE")
            await conn.execute(f"{verb} ROLE {_name(role)} LOGIN CREATEDB "
                               f"PASSWORD {_literal(password)}")
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                await conn.execute(f"CREATE DATABASE {_name(database)} OWNER {_name(role)}")
        finally:
            await conn.close()


def stop_server(rec: procs.ProcRecord, timeout: float = 30.0) -> bool:
    """Fast shutdown (SIGINT: sessions end, a checkpoint is written), then procs.stop for
    anything left. Not SIGTERM: that is PostgreSQL's smart shutdown, which waits for every
    client to leave. True if it was running."""
    if not procs.is_alive(rec):
        return False
    with _no_such_process():
        os.kill(rec.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while procs.is_alive(rec) and time.monotonic() < deadline:
        time.sleep(0.05)
    with _no_such_process():
        if os.waitpid(rec.pid, os.WNOHANG)[0] == rec.pid:  # reap it if it is our child
            return True
    procs.stop(rec)
    return True


@contextmanager
def _no_such_process() -> Iterator[None]:
    try:
        yield
    except (ProcessLookupError, ChildProcessError):
        pass


async def answers(dsn: str, within: float = 2.0) -> bool:
    """True when a session with these credentials opens and SELECT 1 answers."""
    try:
        conn = await asyncpg.connect(dsn, timeout=within)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    try:
        return bool(await conn.fetchval("SELECT 1", timeout=within) == 1)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    finally:
        await conn.close(timeout=within)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_postgres(role: str = "hotline", database: str = "hotline"
                     ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(DSN, process) of a throw-away cluster on a free loopback port; removed on exit.

    Not the lab's (telephony.lab.lab keeps that one on a fixed port): this one
    lives for one test or one bench run, in a fresh temporary directory (under
    the system's temp dir, which the `postgres` user can reach, unlike pytest's
    root-only tmp_path).
    """
    base = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    cluster = Cluster(base, _free_port())
    proc: subprocess.Popen[bytes] | None = None
    try:
        cluster.prepare()
        proc = subprocess.Popen(cluster.server_argv(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        running = proc
        password = secrets.token_urlsafe(18)
        asyncio.run(cluster.bootstrap(role, password, database,
                                      alive=lambda: running.poll() is None))
        yield dsn(role, password, database, cluster.port), proc
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # in case a test left it stopped
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
