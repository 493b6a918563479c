"""Background processes the lab starts, tracked by PID in a JSON state file.

Only processes we started are ever signalled, and only after checking that the
PID still runs the command we started (PIDs get reused).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ProcRecord:
    name: str
    pid: int
    argv: list[str]
    marker: str  # a string that must appear in /proc/<pid>/cmdline
    log: str
    started: float


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_alive(rec: ProcRecord) -> bool:
    try:
        os.kill(rec.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        stat = Path(f"/proc/{rec.pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except OSError:
        return False
    return rec.marker in cmdline(rec.pid)


def spawn(name: str, argv: list[str], log: Path, marker: str) -> ProcRecord:
    """Start argv detached (own session) with output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    return ProcRecord(name, proc.pid, argv, marker, str(log), time.time())


def stop(rec: ProcRecord, timeout: float = 10.0) -> bool:
    """SIGTERM the process group, then SIGKILL after `timeout`. True if it was running."""
    if not is_alive(rec):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(rec.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                # Reap it if it is our child (same process that started it).
                if os.waitpid(rec.pid, os.WNOHANG)[0] == rec.pid:
                    return True
            except ChildProcessError:
                pass
            if not is_alive(rec):
                return True
            time.sleep(0.05)
    return True


class StateFile:
    """The lab's state: started processes plus small facts (secrets, hashes).

    Several processes use the lab at once (a test run, the demo, a benchmark),
    so every change is a locked read-modify-write of the file, never a write of
    a stale in-memory copy.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._load()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:  # readers don't rewrite the file
                self._save(data)

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"procs": {}, "facts": {}}

    def _save(self, data: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.chmod(tmp, 0o600)  # holds the lab's AMI secret and API tokens
        tmp.replace(self.path)

    def procs(self) -> dict[str, ProcRecord]:
        return {k: ProcRecord(**v) for k, v in self._load()["procs"].items()}

    def put_proc(self, rec: ProcRecord) -> None:
        with self._locked() as data:
            data["procs"][rec.name] = asdict(rec)

    def drop_proc(self, name: str) -> None:
        with self._locked() as data:
            data["procs"].pop(name, None)

    def facts(self) -> dict:
        """A snapshot of the facts; change them with set_fact / fact_default."""
        return self._load()["facts"]

    def set_fact(self, key: str, value: object) -> None:
        with self._locked() as data:
            data["facts"][key] = value

    def fact_default(self, key: str, make: Callable[[], object]) -> object:
        """The fact's value, created once (atomically across processes) by make()."""
        return self.fact_update(key, lambda old: make() if old is None else old)

    def fact_update(self, key: str, update: Callable[[object | None], object]) -> object:
        """Replace the fact by update(old value or None), atomically across processes."""
        with self._locked() as data:
            data["facts"][key] = update(data["facts"].get(key))
            return data["facts"][key]
