"""Scenario rendering: the citizen UAC and the agent/desk UAS, from `sip-sim/scenarios/`.

Options become XML: each run renders its templates into its own work dir, with
generated parts (answer, key presses, hang-up) at the @@MARKERS@@.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from telephony.lab.dtmf_pcap import write_press_pcap
from telephony.lab.sipp_process import bind_args, pick_media_port, sipp_argv
from telephony.lab.sipp_xml import (
    DtmfMode,
    KeyPresses,
    cdata_send,
    check_presses,
    header_lines,
    in_dialog_request,
    ok_lines,
    pause,
    play,
    reason_phrase,
    uas_response,
    wait_for_bye,
)

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "sip-sim" / "scenarios"
SIPP_SHARE = Path("/usr/share/sip-tester")
AUDIO_PCAP = SIPP_SHARE / "g711a.pcap"
PRESS_MS = 220  # one generated RFC 4733 press: 160 ms tone + 3 end packets, 20 ms apart
INFO_DIGIT_GAP_MS = 100  # between the digits of one INFO key sequence such as "*1"


def render_template(template: str, values: Mapping[str, str]) -> str:
    text = (SCENARIO_DIR / template).read_text()
    for key, value in values.items():  # in order: later values may fill earlier ones
        text = text.replace(f"@@{key}@@", value)
    leftover = re.search(r"@@[A-Z_]+@@", text)
    if leftover:
        raise ValueError(f"template {template} has an unrendered marker {leftover.group()}")
    return text


def write_scenario(
    workdir: Path, template: str, name: str, *, self_user: str, values: Mapping[str, str]
) -> Path:
    """Render template into workdir/name, with the shared in-dialog handler."""
    xml = render_template(
        template,
        {
            **values,
            "UNEXPECTED": render_template("in_dialog_handler.xml", {"SELF_USER": self_user}),
            "SELF_USER": self_user,  # last: the generated parts contain it too
        },
    )
    path = workdir / name
    path.write_text(xml)
    return path


@dataclass
class CallPlan:
    """Turns timed presses and the hang-up into scenario steps, tracking elapsed ms."""

    mode: DtmfMode
    workdir: Path
    dialog: dict[str, str]  # request_uri, from_, to, contact for our in-dialog requests
    cseq: int = 2
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    elapsed_ms: int = 0
    steps: list[str] = field(default_factory=list)
    seq: int = field(default_factory=lambda: random.getrandbits(15))
    timestamp_base: int = field(default_factory=lambda: random.getrandbits(30))
    press_count: int = 0

    def wait_until(self, at_ms: int) -> None:
        self.steps.append(pause(at_ms - self.elapsed_ms))
        self.elapsed_ms = max(self.elapsed_ms, at_ms)

    def press(self, at_ms: int, digits: str) -> None:
        self.wait_until(at_ms)
        for digit in digits:
            if self.mode == "info":
                self._request(
                    "INFO",
                    body=[f"Signal={digit}", "Duration=160"],
                    content_type="application/dtmf-relay",
                )
                self.steps.append(pause(INFO_DIGIT_GAP_MS))
                self.elapsed_ms += INFO_DIGIT_GAP_MS
            else:
                self._press_rfc4733(digit)

    def hang_up_at(self, at_ms: int) -> None:
        self.wait_until(at_ms)
        self._request("BYE")

    def in_call(self, presses: list[tuple[int, str]], hang_up_at_ms: int | None) -> dict[str, str]:
        """The IN_CALL and ENDING markers: checked presses, then our BYE at
        hang_up_at_ms after answer, or (None) a wait for the far end's BYE."""
        for at_ms, digits in presses:
            self.press(at_ms, digits)
        if hang_up_at_ms is None:
            ending = wait_for_bye()
        else:
            self.hang_up_at(hang_up_at_ms)
            ending = ""
        return {"IN_CALL": self.render(), "ENDING": ending}

    def _request(self, method: str, **kwargs) -> None:
        self.steps.append(in_dialog_request(method, self.dialog, cseq=self.cseq, **kwargs))
        self.cseq += 1

    def _press_rfc4733(self, digit: str) -> None:
        # A distinct timestamp per press, so Asterisk never mistakes it for a repeat.
        self.press_count += 1
        pcap = self.workdir / f"press{self.press_count:02d}.pcap"
        timestamp = self.timestamp_base + 8 * self.elapsed_ms
        self.seq = write_press_pcap(pcap, digit, seq=self.seq, timestamp=timestamp, ssrc=self.ssrc)
        # Wait for the pcap to finish: a new play_pcap_audio cancels the running one.
        self.steps += [play(pcap), pause(PRESS_MS)]
        self.elapsed_ms += PRESS_MS

    def render(self) -> str:
        return "\n".join(step for step in self.steps if step)


# --------------------------------------------------------------------------- citizen (UAC)


def render_citizen(
    workdir: Path,
    *,
    number: str,
    caller: str,
    headers: Mapping[str, str],
    dtmf: KeyPresses,
    dtmf_mode: DtmfMode,
    talk_s: float | None,
    play_audio: bool,
) -> Path:
    """Render the citizen UAC scenario into workdir; returns the XML path."""
    for label, value in (("number", number), ("caller", caller)):
        if not re.fullmatch(r"[0-9A-Za-z*#+._-]+", value):
            raise ValueError(f"bad {label}: {value!r}")
    us = f"<sip:{caller}@[local_ip]:[local_port]>"
    plan = CallPlan(
        dtmf_mode,
        workdir,
        dialog={
            "request_uri": "[next_url]",
            "from_": f"{us};tag=[pid]SIPpTag00[call_number]",
            "to": f"<sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]",
            "contact": us,
        },
    )
    if play_audio:
        plan.steps.append(play(AUDIO_PCAP))
    in_call = plan.in_call(check_presses(dtmf), None if talk_s is None else round(talk_s * 1000))
    values = {"HEADERS": header_lines(headers), **in_call, "NUMBER": number, "CALLER": caller}
    return write_scenario(
        workdir, "citizen_uac.xml", "citizen.xml", self_user=caller, values=values
    )


# --------------------------------------------------------------------------- agents and desks (UAS)


class UasOptions(TypedDict, total=False):
    """UasBehaviour's fields as keyword arguments, for the public start/argv signatures."""

    ring_delay_ms: int
    reject_code: int | None
    ring_forever: bool
    keys: KeyPresses
    mode: DtmfMode
    hangup_after_ms: int | None
    max_calls: int | None
    lifetime_s: float | None


@dataclass(frozen=True)
class UasBehaviour:
    """What an agent/desk UAS does with every call, and how long its sipp runs.

    The defaults are a desk: answer at once, stay until the caller's BYE.
    """

    ring_delay_ms: int = 0
    reject_code: int | None = None  # 4xx-6xx: refuse every call with it
    ring_forever: bool = False  # ring until the caller gives up (CANCEL)
    keys: KeyPresses = ()  # (ms after answer, digits) pressed in every answered call
    mode: DtmfMode = "info"  # keys as SIP INFO (Signal=<digit>) or RFC 4733 RTP
    hangup_after_ms: int | None = None  # our BYE that long after answer; None: wait for theirs
    max_calls: int | None = None  # sipp exits after this many calls
    lifetime_s: float | None = 900.0  # sipp's global timeout; None: none

    def argv(
        self, workdir: Path, *, port: int, user: str, media_port: int | None = None
    ) -> list[str]:
        """Render the scenario into workdir and return the sipp command line."""
        scenario = render_agent(workdir, user=user, behaviour=self)
        args = [*bind_args(port, media_port or pick_media_port()), *self.sipp_args()]
        return sipp_argv(scenario, args)

    def sipp_args(self) -> list[str]:
        args = ["-aa"]
        if self.lifetime_s is not None:
            args += ["-timeout", f"{max(1, round(self.lifetime_s))}s"]  # never outlive a test run
        if self.max_calls is not None:
            args += ["-m", str(self.max_calls)]
        return args

    def answer(self) -> tuple[list[str], str]:
        """The captures it needs and the reply to the INVITE (the ANSWER marker)."""
        if self.reject_code is not None:
            if not 400 <= self.reject_code <= 699:
                raise ValueError(f"reject_code must be a 4xx-6xx status: {self.reject_code}")
            status = f"SIP/2.0 {self.reject_code} {reason_phrase(self.reject_code)}"
            return [], "\n".join(
                [cdata_send(uas_response(status)), '  <recv request="ACK" next="done"/>']
            )
        if self.ring_forever:
            return _RING_FOREVER
        return [], "\n".join(
            [
                cdata_send(uas_response("SIP/2.0 180 Ringing")),
                pause(self.ring_delay_ms),
                cdata_send(uas_response("SIP/2.0 200 OK", sdp=True), attrs=' retrans="500"'),
                '  <recv request="ACK" crlf="true"/>',
            ]
        )

    def sends_in_dialog(self) -> bool:
        """True if the UAS itself sends requests in the call (INFO keys or its BYE)."""
        return (bool(self.keys) and self.mode == "info") or self.hangup_after_ms is not None


# The INVITE's CSeq is kept because the 487 follows the CANCEL, whose CSeq differs.
_RING_FOREVER = (
    ['<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>'],
    "\n".join(
        [
            cdata_send(uas_response("SIP/2.0 180 Ringing")),
            "  <!-- Never answer: wait for the caller to give up. -->",
            '  <recv request="CANCEL"/>',
            cdata_send(ok_lines()),
            cdata_send(
                uas_response("SIP/2.0 487 Request Terminated", cseq="CSeq: [$invite_cseq] INVITE")
            ),
            '  <recv request="ACK" next="done"/>',
        ]
    ),
)

# An in-dialog request from the UAS swaps the INVITE's From/To and targets its Contact.
_DIALOG_CAPTURES = [
    '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>',
    '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>',
    '<ereg regexp="sip:[^&gt;;]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>',
]


def render_agent(workdir: Path, *, user: str, behaviour: UasBehaviour) -> Path:
    """Render the auto-answer UAS scenario (agent or desk) into workdir."""
    if not re.fullmatch(r"[0-9A-Za-z._-]+", user):
        raise ValueError(f"bad user: {user!r}")
    captures, answer = behaviour.answer()
    keys = check_presses(behaviour.keys)
    if behaviour.sends_in_dialog():
        captures = [*captures, *_DIALOG_CAPTURES]
    plan = CallPlan(
        behaviour.mode,
        workdir,
        cseq=101,
        dialog={
            "request_uri": "[$remote_contact]",
            "from_": "[$local_to];tag=[pid]SIPpTag01[call_number]",
            "to": "[$remote_from]",
            "contact": f"<sip:{user}@[local_ip]:[local_port]>",
        },
    )
    values = {
        "CAPTURE": "\n".join(f"      {c}" for c in captures),
        "ANSWER": answer,
        **plan.in_call(keys, behaviour.hangup_after_ms),
    }
    return write_scenario(workdir, "agent_uas.xml", "agent.xml", self_user=user, values=values)
