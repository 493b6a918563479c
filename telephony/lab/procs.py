"""Background processes the lab starts, tracked by PID in a JSON state file.

Only processes we started are ever signalled, and only after checking that the
PID still runs the command we started (PIDs get reused).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
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
    """The lab's state: started processes plus small facts (secrets, hashes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"procs": {}, "facts": {}}
        if path.exists():
            self.data = json.loads(path.read_text())

    def procs(self) -> dict[str, ProcRecord]:
        return {k: ProcRecord(**v) for k, v in self.data["procs"].items()}

    def put_proc(self, rec: ProcRecord) -> None:
        self.data["procs"][rec.name] = asdict(rec)
        self.save()

    def drop_proc(self, name: str) -> None:
        self.data["procs"].pop(name, None)
        self.save()

    def facts(self) -> dict:
        return self.data["facts"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        os.chmod(tmp, 0o600)  # holds the lab's AMI secret
        tmp.replace(self.path)
