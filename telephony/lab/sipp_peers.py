"""The lab's SIPp peers as async objects: one citizen call (UAC), agents and desks (UAS)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self, Unpack

from telephony.lab import topology
from telephony.lab.sipp_log import CallRecord, SipMessage, summarize_calls
from telephony.lab.sipp_process import (
    STOP_GRACE_S,
    SippProcess,
    bind_args,
    new_workdir,
    pick_media_port,
    pick_sip_port,
    sipp_argv,
    udp_port_bound,
    udp_port_free,
)
from telephony.lab.sipp_scenario import UasBehaviour, UasOptions, render_citizen
from telephony.lab.sipp_xml import DtmfMode, KeyPresses

# --------------------------------------------------------------------------- citizen


@dataclass(frozen=True)
class CitizenResult:
    """What one citizen call did. `ok` means SIPp passed and the call was answered."""

    ok: bool
    exit_code: int
    sip_status: int | None
    call_id: str | None
    invite_to_ringing_ms: float | None
    invite_to_answer_ms: float | None
    call_duration_s: float | None
    hangup_by: Literal["us", "far"] | None
    errors: str
    messages: tuple[SipMessage, ...]
    workdir: Path

    def received(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "received" and m.method == method]

    def sent(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "sent" and m.method == method]


async def citizen_call(
    *,
    number: str,
    port: int,
    host: str = topology.HOST,
    caller: str = "13800000001",
    headers: Mapping[str, str] | None = None,
    dtmf: KeyPresses = (),
    dtmf_mode: DtmfMode = "rfc4733",
    talk_s: float | None = 3.0,
    play_audio: bool = False,
    timeout_s: float = 30.0,
    local_port: int | None = None,
    keep_workdir: bool = False,
) -> CitizenResult:
    """Place one call to sip:<number>@host:port and wait for it to end.

    dtmf: (ms after answer, digits) presses. talk_s: hang up that many seconds after
    answer; None stays until the far end sends BYE. The call never outlives timeout_s.
    """
    workdir = new_workdir("citizen")
    scenario = render_citizen(
        workdir,
        number=number,
        caller=caller,
        headers=headers or {},
        dtmf=dtmf,
        dtmf_mode=dtmf_mode,
        talk_s=talk_s,
        play_audio=play_audio,
    )
    timeout = max(2, round(timeout_s))
    args = uac_args(host, port, local_port, call_timeout_s=timeout, run_timeout_s=timeout)
    sipp = await SippProcess.spawn(sipp_argv(scenario, [*args, "-m", "1"]), workdir,
                                   keep_workdir=keep_workdir)
    exit_code = await sipp.wait(timeout + STOP_GRACE_S + 2)
    messages = sipp.messages()
    calls = summarize_calls(messages)
    call = calls[0] if calls else None
    result = CitizenResult(
        ok=exit_code == 0 and call is not None and call.answered,
        exit_code=exit_code,
        sip_status=call.final_status if call else None,
        call_id=call.call_id if call else None,
        invite_to_ringing_ms=call.invite_to_ringing_ms if call else None,
        invite_to_answer_ms=call.invite_to_answer_ms if call else None,
        call_duration_s=call.duration_s if call else None,
        hangup_by=call.hangup_by if call else None,
        errors=sipp.errors(),
        messages=tuple(messages),
        workdir=workdir,
    )
    sipp.cleanup()
    return result


def uac_args(host: str, port: int, local_port: int | None, *, call_timeout_s: int,
             run_timeout_s: int) -> list[str]:
    """sipp options shared by citizen UACs: target, bind, auto-answer, time limits.

    A receive times out a little before the call's limit, so SIPp aborts the call
    itself (CANCEL while ringing, BYE once answered); the run's global timeout is
    a backstop.
    """
    return [
        f"{host}:{port}",
        *bind_args(local_port or pick_sip_port(), pick_media_port()),
        "-aa",
        "-timeout",
        f"{run_timeout_s}s",
        "-timeout_error",
        "-recv_timeout",
        str(call_timeout_s * 1000 - 1500),
    ]


async def citizen_load(
    *,
    number: str,
    port: int,
    rate: float,
    calls: int,
    host: str = topology.HOST,
    caller: str = "13900000000",
    call_timeout_s: float = 25.0,
) -> list[CallRecord]:
    """Place `calls` calls at `rate` per second from ONE sipp process (its own pacing).

    Each caller stays until the far end hangs up. One process for a whole load,
    instead of one per call: starting a sipp per call cost more CPU than the calls
    themselves (about 75 ms of CPU each, mostly in the kernel). Returns one record
    per call, from the process's message log.
    """
    workdir = new_workdir("load")
    scenario = render_citizen(workdir, number=number, caller=caller, headers={}, dtmf=(),
                              dtmf_mode="rfc4733", talk_s=None, play_audio=False)
    call_timeout = max(2, round(call_timeout_s))
    run_timeout = call_timeout + round(calls / rate) + 10
    # n calls every `period` ms: sipp paces them evenly (0.5/s -> 1 call every 2000 ms).
    per, period = (round(rate), 1000) if rate == round(rate) else (round(rate * 10), 10_000)
    args = uac_args(host, port, None, call_timeout_s=call_timeout, run_timeout_s=run_timeout)
    args += ["-m", str(calls), "-r", str(per), "-rp", str(period), "-l", str(max(calls, 1))]
    sipp = await SippProcess.spawn(sipp_argv(scenario, args), workdir, keep_workdir=False)
    await sipp.wait(run_timeout + STOP_GRACE_S + 2)
    records = summarize_calls(sipp.messages())
    sipp.cleanup()
    return records


# --------------------------------------------------------------------------- agents and desks


def uas_argv(
    workdir: Path,
    *,
    port: int,
    user: str,
    media_port: int | None = None,
    **behaviour: Unpack[UasOptions],
) -> list[str]:
    """Render an agent/desk scenario into workdir and return its sipp argv.

    behaviour: UasBehaviour's fields (ring_delay_ms, keys, lifetime_s, ...).
    SippAgent/SippDesk run it as a child of this process. The lab, whose desks must
    outlive `hotline lab up`, can run the same argv detached and read the log back
    with read_messages(workdir). lifetime_s=None: no global timeout.
    """
    return UasBehaviour(**behaviour).argv(workdir, port=port, user=user, media_port=media_port)


def desk_argv(
    workdir: Path, *, number: str, port: int | None = None, lifetime_s: float | None = None
) -> list[str]:
    """The argv of an emergency desk UAS (auto-answer, until BYE, unlimited calls)."""
    port = port or topology.DESKS[number].sip_port
    return uas_argv(workdir, port=port, user=_desk_user(number), lifetime_s=lifetime_s)


def _desk_user(number: str) -> str:
    return f"desk{number}"


@dataclass(frozen=True)
class UasResult:
    """What a stopped agent/desk saw: every call, SIPp's exit code and errors."""

    exit_code: int
    calls: tuple[CallRecord, ...]
    errors: str

    @property
    def answered(self) -> int:
        return sum(call.answered for call in self.calls)


class SippUas:
    """A long-running SIPp UAS (agent or desk) bound to one port; serves many calls."""

    def __init__(self, sipp: SippProcess, port: int):
        self._sipp = sipp
        self.port = port

    @classmethod
    async def _launch(
        cls,
        *,
        port: int,
        user: str,
        behaviour: UasBehaviour,
        keep_workdir: bool = False,
        ready_timeout_s: float = 5.0,
    ) -> Self:
        if not udp_port_free(port):
            raise RuntimeError(f"UDP port {port} is already in use")
        workdir = new_workdir(user)
        argv = behaviour.argv(workdir, port=port, user=user)
        sipp = await SippProcess.spawn(argv, workdir, keep_workdir=keep_workdir)
        uas = cls(sipp, port)
        await uas._wait_ready(ready_timeout_s)
        return uas

    async def _wait_ready(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not udp_port_bound(self.port):
            if self._sipp.proc.returncode is not None or loop.time() > deadline:
                await self._sipp.terminate()
                raise RuntimeError(
                    f"sipp UAS on port {self.port} did not start: {self._sipp.errors()}"
                )
            await asyncio.sleep(0.05)

    @property
    def workdir(self) -> Path:
        return self._sipp.workdir

    @property
    def pid(self) -> int:
        return self._sipp.proc.pid

    @property
    def running(self) -> bool:
        return self._sipp.proc.returncode is None

    def calls(self) -> list[CallRecord]:
        return summarize_calls(self._sipp.messages())

    def invites(self) -> list[dict[str, str]]:
        """Headers of each call's first INVITE received so far (Call-ID, X-Ticket-*, ...)."""
        return [dict(call.invite.headers) for call in self.calls()]

    async def wait_for_calls(
        self, count: int, *, ended: bool = False, timeout_s: float = 10.0
    ) -> list[CallRecord]:
        """Poll the log until `count` calls arrived (or ended, with a BYE or final non-2xx)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            calls = self.calls()
            done = [c for c in calls if not ended or c.hangup_by or (c.final_status or 0) >= 300]
            if len(done) >= count or loop.time() > deadline:
                return calls
            await asyncio.sleep(0.1)

    async def stop(self) -> UasResult:
        exit_code = await self._sipp.terminate()
        result = UasResult(exit_code, tuple(self.calls()), self._sipp.errors())
        self._sipp.cleanup()
        return result

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.running:
            await self.stop()


class SippAgent(SippUas):
    """An auto-answer agent endpoint (e.g. agent12345-1 on 16101)."""

    @classmethod
    async def start(
        cls,
        *,
        port: int,
        user: str = "agent",
        keep_workdir: bool = False,
        **behaviour: Unpack[UasOptions],
    ) -> SippAgent:
        """behaviour: UasBehaviour's fields, e.g. ring_delay_ms=500, keys=[(2000, "*1")].
        keys: (ms after answer, digits) pressed in every answered call, as SIP INFO
        (mode="info", Signal=<digit>) or RFC 4733 RTP (mode="rfc4733").
        hangup_after_ms: send BYE that long after answer; None waits for the caller's BYE."""
        return await cls._launch(
            port=port, user=user, behaviour=UasBehaviour(**behaviour), keep_workdir=keep_workdir
        )


class SippDesk(SippUas):
    """An emergency desk (119/120/122): answers at once, stays until BYE, any number of calls."""

    @classmethod
    async def start(
        cls,
        *,
        port: int,
        number: str = "119",
        lifetime_s: float = 900.0,
        keep_workdir: bool = False,
    ) -> SippDesk:
        return await cls._launch(
            port=port,
            user=_desk_user(number),
            behaviour=UasBehaviour(lifetime_s=lifetime_s),
            keep_workdir=keep_workdir,
        )
