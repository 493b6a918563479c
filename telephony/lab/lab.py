"""The two-platform lab: Asterisk nodes 12345 and 110, desks 119/120/122, Redis, PostgreSQL.

`up` is idempotent: what already runs (and answers) is kept, what is missing is
started, and a node whose rendered config changed is restarted. `down` stops
every process we started, by PID. Asterisk runs chrooted inside a private mount
namespace (`unshare --mount`), so its /proc mount disappears with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from telephony.lab import private_postgres, procs
from telephony.lab.amiping import ami_ping
from telephony.lab.render import LAB_TIMERS, node_values, render_node
from telephony.lab.root import AsteriskRoot, ensure_root
from telephony.lab.topology import (
    DESKS,
    HOST,
    NODES,
    POSTGRES_PORT,
    REDIS_PORT,
    Node,
    other_platform,
)

STATE_DIR = Path(os.environ.get("HOTLINE_LAB_DIR", "/var/tmp/hotline-lab"))
NODE_BASE_IN_ROOT = "/srv/hotline-lab"  # node dirs, as seen inside the chroot
AMI_USER = "hotline"
PG_ROLE = PG_DATABASE = "hotline"  # the archive's role and database in the lab's PostgreSQL
SOUNDS_SUBDIR = "usr/share/asterisk/sounds/hotline"


class LabError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class NodeInfo:
    """How to reach one node: what the service and the tests need."""

    platform: str
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    sip_port: int
    conf: str  # asterisk.conf path inside the root (for `asterisk -C ... -rx`)


class Lab:
    def __init__(self, state_dir: Path = STATE_DIR, root: AsteriskRoot | None = None) -> None:
        self.state_dir = state_dir
        self.state = procs.StateFile(state_dir / "lab.json")
        self._root = root

    # -- facts ---------------------------------------------------------------
    @property
    def root(self) -> AsteriskRoot:
        if self._root is None:
            self._root = ensure_root()
        return self._root

    def ami_secret(self) -> str:
        env = os.environ.get("HOTLINE_AMI_SECRET")
        if env:
            self.state.set_fact("ami_secret", env)
            return env
        return str(self.state.fact_default("ami_secret", lambda: secrets.token_urlsafe(24)))

    def node_dir(self, node: Node) -> str:
        return f"{NODE_BASE_IN_ROOT}/{node.name}"

    def host_path(self, path_in_root: str) -> Path:
        return self.root.path / path_in_root.lstrip("/")

    def node_info(self, platform: str) -> NodeInfo:
        node = NODES[platform]
        secret = self.ami_secret()
        return NodeInfo(
            platform, HOST, node.ami_port, AMI_USER, secret, node.sip_port,
            f"{self.node_dir(node)}/etc/asterisk.conf",
        )

    def api_tokens(self) -> dict:
        """HTTP API tokens for the lab: admin, a supervisor per platform, and one per
        agent phone. Same shape as a deployment's tokens file. A subject keeps its
        token across runs; subjects follow the topology (more agents, new tokens)."""
        def wanted() -> list[dict]:
            entries = [{"role": "admin", "subject": "admin", "platform": "12345"}]
            for platform, node in NODES.items():
                entries.append({"role": "supervisor", "subject": f"supervisor{platform}",
                                "platform": platform, "endpoint": node.agents[-1].endpoint})
                entries += [{"role": "agent", "subject": a.endpoint, "platform": platform}
                            for a in node.agents]
            return entries

        def update(old: object) -> dict:
            known = {t["subject"]: t["token"]
                     for t in (old or {}).get("tokens", [])}  # type: ignore[attr-defined]
            return {"tokens": [{"token": known.get(e["subject"]) or secrets.token_urlsafe(24),
                                **e} for e in wanted()]}

        return cast(dict, self.state.fact_update("api_tokens", update))

    def token_for(self, subject: str) -> str:
        return next(t["token"] for t in self.api_tokens()["tokens"] if t["subject"] == subject)

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{REDIS_PORT}/0"

    def postgres_password(self) -> str:
        return str(self.state.fact_default("postgres_password",
                                           lambda: secrets.token_urlsafe(24)))

    @property
    def postgres_dsn(self) -> str:
        """The archive's database: role `hotline` (may create databases), over TCP."""
        return private_postgres.dsn(PG_ROLE, self.postgres_password(), PG_DATABASE,
                                    POSTGRES_PORT)

    @property
    def postgres(self) -> private_postgres.Cluster:
        return private_postgres.Cluster(self.state_dir / "postgres", POSTGRES_PORT)

    # -- up ------------------------------------------------------------------
    def up(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        root = self.root
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_redis()
        self._ensure_postgres()
        self._ensure_sounds()
        for node in NODES.values():
            self._ensure_node(node, root)
        for desk in DESKS.values():
            self._ensure_desk(desk.number, desk.sip_port)
        self.wait_ready(timeout)
        _log(f"lab up in {time.monotonic() - t0:.1f}s")

    def _ensure(self, name: str, argv: list[str], marker: str) -> procs.ProcRecord:
        rec = self.state.procs().get(name)
        if rec and procs.is_alive(rec):
            return rec
        rec = procs.spawn(name, argv, self.state_dir / "log" / f"{name}.log", marker)
        self.state.put_proc(rec)
        _log(f"started {name} (pid {rec.pid})")
        return rec

    def _ensure_redis(self) -> None:
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._ensure("redis", [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--bind", HOST, "--port", str(REDIS_PORT), "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--protected-mode", "yes", "--daemonize", "no",
        ], marker=f"{HOST}:{REDIS_PORT}")

    def _ensure_postgres(self) -> None:
        """A cluster of our own under the state dir: made once (initdb), started when it
        is not running, the archive's role and database made when they do not answer."""
        cluster = self.postgres
        rec = self.state.procs().get("postgres")
        try:
            if rec and procs.is_alive(rec):
                if asyncio.run(private_postgres.answers(self.postgres_dsn)):
                    return
            else:
                if _tcp_listening(HOST, POSTGRES_PORT):
                    raise LabError(
                        f"postgres: port {POSTGRES_PORT} is taken by a process this lab did not "
                        "start (an orphan from another checkout?); stop it first")
                fresh = not cluster.initialised()
                cluster.prepare()
                if fresh:
                    _log(f"initialised a PostgreSQL {cluster.version()} cluster in {cluster.data}")
                rec = self._ensure("postgres", cluster.server_argv(), marker=str(cluster.data))
            started = rec
            asyncio.run(cluster.bootstrap(PG_ROLE, self.postgres_password(), PG_DATABASE,
                                          alive=lambda: procs.is_alive(started)))
        except private_postgres.PostgresError as exc:
            raise LabError(f"postgres: {exc}\n{self._log_tail('postgres')}") from exc

    def _ensure_sounds(self) -> None:
        """Mandarin prompts from the one prompt table; only changed texts are re-rendered."""
        from ivr.prompts import all_prompts, render_prompts

        rendered = render_prompts(all_prompts(), self.root.path / SOUNDS_SUBDIR)
        if rendered:
            _log(f"rendered {len(rendered)} prompts into {SOUNDS_SUBDIR}")

    def _ensure_node(self, node: Node, root: AsteriskRoot) -> None:
        node_dir = self.node_dir(node)
        host_dir = self.host_path(node_dir)
        for sub in ("etc", "run", "spool", "log", "lib", "lib/keys", "cache", "moh"):
            (host_dir / sub).mkdir(parents=True, exist_ok=True)
        values = node_values(
            node, node_dir=node_dir, ami_user=AMI_USER, ami_secret=self.ami_secret(),
            other_sip_port=NODES[other_platform(node.platform)].sip_port, timers=LAB_TIMERS,
        )
        written = render_node(values, host_dir / "etc")
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in written)).hexdigest()[:16]
        hold = host_dir / "moh" / "hold.wav"
        if not hold.exists():
            subprocess.run(
                ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(hold),
                 "synth", "4", "sine", "440", "vol", "0.05"], check=True,
            )
        key = f"config_hash.{node.name}"
        rec = self.state.procs().get(node.name)
        if rec and procs.is_alive(rec) and self.state.facts().get(key) != digest:
            _log(f"{node.name}: config changed, restarting")
            procs.stop(rec)
        self.state.set_fact(key, digest)
        conf = f"{node_dir}/etc/asterisk.conf"
        rec = self.state.procs().get(node.name)
        if not (rec and procs.is_alive(rec)):
            # A fresh log per start, so "no errors since start" is checkable.
            log = host_dir / "log" / "messages.log"
            if log.exists():
                log.replace(log.with_suffix(".log.prev"))
            if _tcp_listening(HOST, node.ami_port):
                raise LabError(
                    f"{node.name}: AMI port {node.ami_port} is taken by a process this lab did "
                    "not start (an orphan from another checkout?); stop it first"
                )
        script = (
            f"mount -t proc proc {root.path}/proc && "
            f"exec chroot {root.path} /usr/sbin/asterisk -C {conf} -f -n -q"
        )
        self._ensure(node.name, ["unshare", "--mount", "sh", "-c", script], marker=conf)

    def _ensure_desk(self, number: str, port: int) -> None:
        from telephony.lab import sipp

        workdir = self.desk_dir(number)
        workdir.mkdir(parents=True, exist_ok=True)
        argv = sipp.desk_argv(workdir, number=number, port=port)
        self._ensure(f"desk{number}", argv, marker=str(workdir))

    def desk_dir(self, number: str) -> Path:
        """Where desk <number> keeps its SIPp logs (read with sipp.read_messages)."""
        return self.state_dir / "desks" / number

    # -- readiness -----------------------------------------------------------
    async def ready(self) -> dict[str, bool]:
        checks = {
            f"node{p}": ami_ping(HOST, n.ami_port, AMI_USER, self.ami_secret())
            for p, n in NODES.items()
        }
        results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        results["redis"] = await _redis_ping()
        results["postgres"] = await private_postgres.answers(self.postgres_dsn)
        for name, rec in self.state.procs().items():
            if name.startswith("desk"):
                results[name] = procs.is_alive(rec)
        return results

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            results = asyncio.run(self.ready())
            if all(results.values()):
                # AMI answers before every module is loaded; wait for FullyBooted too.
                for platform in NODES:
                    self.asterisk_cli(platform, "core waitfullybooted", timeout=30)
                return
            dead = [n for n, r in self.state.procs().items() if not procs.is_alive(r)]
            if dead or time.monotonic() > deadline:
                bad = [k for k, v in results.items() if not v]
                logs = "\n".join(self._log_tail(n) for n in (dead or bad))
                raise LabError(f"lab not ready: {bad}; exited: {dead}\n{logs}")
            time.sleep(0.3)

    def _log_tail(self, name: str, lines: int = 15) -> str:
        rec = self.state.procs().get(name)
        if not rec:
            return f"--- {name}: no process record"
        try:
            text = Path(rec.log).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = []
        return f"--- {name} ({rec.log}):\n" + "\n".join(text)

    # -- status / down -------------------------------------------------------
    def status(self) -> tuple[bool, list[str]]:
        lines, ok = [], True
        recs = self.state.procs()
        if not recs:
            return False, ["lab is down (no processes recorded)"]
        ready = asyncio.run(self.ready())
        for name, rec in sorted(recs.items()):
            alive = procs.is_alive(rec)
            answers = ready.get(name, alive)
            ok &= alive and answers
            state = "up" if alive and answers else ("not answering" if alive else "exited")
            lines.append(f"{name:10} pid {rec.pid:<8} {state}")
        return ok, lines

    def down(self) -> list[str]:
        stopped = []
        for name, rec in self.state.procs().items():
            stop = private_postgres.stop_server if name == "postgres" else procs.stop
            if stop(rec):
                stopped.append(name)
            self.state.drop_proc(name)
        self._unmount_leftovers()
        return stopped

    def _unmount_leftovers(self) -> None:
        """Belt and braces: unmount anything of ours under the cache dir."""
        base = str(self.root.path)
        mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
        for mnt in sorted((m for m in mounts if m.startswith(base)), reverse=True):
            subprocess.run(["umount", "-l", mnt], check=False)

    def node_log(self, platform: str) -> Path:
        """The node's Asterisk messages log (notices, warnings, errors) since its start."""
        return self.host_path(self.node_dir(NODES[platform])) / "log" / "messages.log"

    @contextlib.contextmanager
    def exclusive(self, wait_s: float = 1800.0) -> Iterator[None]:
        """Hold the lab for one user (a test session, a recording, the demo).

        Two users placing calls at once would share agents and queues; this
        flock makes the second wait instead (it is released when the process exits).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "use.lock", "w") as fh:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LabError("the lab is busy (another test run holds it)") from None
                    time.sleep(0.5)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def agent_login(self, platform: str, endpoint: str) -> None:
        """Put an agent phone into its platform's queue (签入), like a desk login."""
        queue = NODES[platform].queue
        out = self.asterisk_cli(platform, f"queue add member PJSIP/{endpoint} to {queue}")
        if "Added" not in out and "Already there" not in out:
            raise LabError(f"agent login {endpoint} -> {queue} failed: {out.strip()}")

    def agent_logout(self, platform: str, endpoint: str) -> None:
        queue = NODES[platform].queue
        self.asterisk_cli(platform, f"queue remove member PJSIP/{endpoint} from {queue}")

    def asterisk_cli(self, platform: str, command: str, timeout: float = 15.0) -> str:
        """Run an Asterisk CLI command on a node (remote console, -rx)."""
        info = self.node_info(platform)
        out = subprocess.run(
            ["chroot", str(self.root.path), "/usr/sbin/asterisk", "-C", info.conf, "-rx", command],
            capture_output=True, text=True, timeout=timeout,
        )
        return out.stdout + out.stderr


def _tcp_listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def _redis_ping() -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, REDIS_PORT), 2)
    except (TimeoutError, OSError):
        return False
    try:
        writer.write(b"PING\r\n")
        return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"+PONG")
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()
