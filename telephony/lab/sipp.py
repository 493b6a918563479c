"""Async driver for the lab's SIPp peers: citizen caller (UAC), agents and desks (UAS).

Scenario templates live in `sip-sim/scenarios/`; each run renders them into its
own work dir (options become XML), runs `sipp` as a child process on its own
SIP and media ports, and reads SIPp's message log back into `SipMessage`s to
report what happened: final status, timings, captured INVITE headers.

    agent = await SippAgent.start(port=16101, ring_delay_ms=500, keys=[(2000, "*1")])
    res = await citizen_call(number="12345", port=15060, headers={"X-Ticket-Id": "T-1"})
    agent.invites()[0]["X-Ticket-Id"]  # -> "T-1"
    await agent.stop()

This module is the driver's one import point; the parts sit next to it, one concern each:
    sipp_log       the message log parsed into SipMessage and CallRecord (pure)
    sipp_xml       scenario XML fragments and key-press checks (pure)
    sipp_scenario  rendering the citizen and agent/desk scenarios; UasBehaviour
    sipp_process   free ports, the sipp command line, one child process
    sipp_peers     citizen_call, citizen_load, SippAgent, SippDesk, uas_argv/desk_argv
    sipp_cli       `hotline sipp call|agent|desk`

See sip-sim/README.md for the scenarios and every option.
"""

from telephony.lab.sipp_cli import parse_headers, parse_presses, register
from telephony.lab.sipp_log import CallRecord, SipMessage, parse_message_log, summarize_calls
from telephony.lab.sipp_peers import (
    CitizenResult,
    SippAgent,
    SippDesk,
    SippUas,
    UasResult,
    citizen_call,
    citizen_load,
    desk_argv,
    uas_argv,
)
from telephony.lab.sipp_process import (
    SIPP_BINARY,
    STOP_GRACE_S,
    SippProcess,
    pick_media_port,
    pick_sip_port,
    read_messages,
    sipp_argv,
    udp_port_bound,
)
from telephony.lab.sipp_scenario import (
    AUDIO_PCAP,
    INFO_DIGIT_GAP_MS,
    PRESS_MS,
    SCENARIO_DIR,
    SIPP_SHARE,
    UasBehaviour,
    UasOptions,
    render_agent,
    render_citizen,
)
from telephony.lab.sipp_xml import DtmfMode, KeyPresses

__all__ = [
    "AUDIO_PCAP",
    "INFO_DIGIT_GAP_MS",
    "PRESS_MS",
    "SCENARIO_DIR",
    "SIPP_BINARY",
    "SIPP_SHARE",
    "STOP_GRACE_S",
    "CallRecord",
    "CitizenResult",
    "DtmfMode",
    "KeyPresses",
    "SipMessage",
    "SippAgent",
    "SippDesk",
    "SippProcess",
    "SippUas",
    "UasBehaviour",
    "UasOptions",
    "UasResult",
    "citizen_call",
    "citizen_load",
    "desk_argv",
    "parse_headers",
    "parse_message_log",
    "parse_presses",
    "pick_media_port",
    "pick_sip_port",
    "read_messages",
    "register",
    "render_agent",
    "render_citizen",
    "sipp_argv",
    "summarize_calls",
    "uas_argv",
    "udp_port_bound",
]
