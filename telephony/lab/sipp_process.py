"""Running sipp: free ports, the command line, one child process and its logs.

Each run lives in its own work dir: the rendered scenario, `argv.txt`, and the
logs SIPp writes there (`messages.log`, `errors.log`, `stderr.log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import random
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

from telephony.lab import topology
from telephony.lab.sipp_log import SipMessage, parse_message_log

SIPP_BINARY = "/usr/bin/sipp"
STOP_GRACE_S = 3.0


# --------------------------------------------------------------------------- ports


def udp_port_free(port: int, host: str = topology.HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def pick_sip_port(port_range: tuple[int, int] = topology.CITIZEN_PORT_RANGE) -> int:
    """A free UDP port from the range, tried in random order (parallel runs rarely collide)."""
    ports = list(range(port_range[0], port_range[1] + 1))
    random.shuffle(ports)
    for port in ports:
        if udp_port_free(port):
            return port
    raise RuntimeError(f"no free UDP port in {port_range}")


def pick_media_port(port_range: tuple[int, int] = topology.SIPP_MEDIA_PORT_RANGE) -> int:
    """The base of a free block of 10 media ports (SIPp uses base..base+3)."""
    blocks = list(range(port_range[0], port_range[1] - 9, 10))
    random.shuffle(blocks)
    for base in blocks:
        if all(udp_port_free(base + offset) for offset in range(4)):
            return base
    raise RuntimeError(f"no free media block in {port_range}")


def udp_port_bound(port: int) -> bool:
    """True if some socket has `port` bound (read from /proc, without touching it)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        # Row: "sl local_address rem_address ..."; local_address is HEXIP:HEXPORT.
        if any(int(row.split()[1].rsplit(":", 1)[1], 16) == port for row in rows if row.strip()):
            return True
    return False


# --------------------------------------------------------------------------- processes


def sipp_argv(scenario: Path, args: Sequence[str]) -> list[str]:
    """The full sipp command line; its logs go next to the scenario (see read_messages)."""
    workdir = scenario.parent
    argv = [
        SIPP_BINARY,
        *args,
        "-sf",
        str(scenario),
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(workdir / "messages.log"),
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
    ]
    (workdir / "argv.txt").write_text(" ".join(argv) + "\n")
    return argv


def read_messages(workdir: Path) -> list[SipMessage]:
    """The SIP messages a sipp run (ours or detached) has logged in workdir so far."""
    try:
        return parse_message_log((workdir / "messages.log").read_text(errors="replace"))
    except FileNotFoundError:
        return []


def bind_args(sip_port: int, media_port: int, host: str = topology.HOST) -> list[str]:
    return ["-i", host, "-p", str(sip_port), "-mi", host, "-mp", str(media_port)]


def new_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"sipp-{prefix}-"))


class SippProcess:
    """One sipp child with its work dir, message log and error log."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, keep_workdir: bool):
        self.proc = proc
        self.workdir = workdir
        self.keep_workdir = keep_workdir

    @classmethod
    async def spawn(cls, argv: Sequence[str], workdir: Path, *, keep_workdir: bool) -> SippProcess:
        with open(workdir / "stderr.log", "wb") as stderr:  # noqa: ASYNC230 - before the child runs
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,  # SIPp's live screen; the logs hold the facts
                stderr=stderr,
                cwd=workdir,
                preexec_fn=_die_with_parent,
            )
        return cls(proc, workdir, keep_workdir)

    def messages(self) -> list[SipMessage]:
        return read_messages(self.workdir)

    def errors(self) -> str:
        """SIPp's error log plus stderr, without its progress chatter."""
        lines = []
        for name in ("stderr.log", "errors.log"):
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace")
                lines += [line for line in text.splitlines() if not _is_chatter(line)]
        return "\n".join(lines).strip()

    async def wait(self, timeout_s: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            return await self.terminate()

    async def terminate(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; always reaps the child."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def cleanup(self) -> None:
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


_CHATTER = re.compile(r"^(In pcap |max pkt length|base port|Resolving remote host|\s*$)")


def _is_chatter(line: str) -> bool:
    return bool(_CHATTER.match(line))


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the Python parent dies (no orphan sipp)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
