"""Every IVR flow path, driven by a scripted caller through the real AgiChannel."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ivr import contract
from ivr.agi_protocol import AgiHangup
from ivr.channel import AgiChannel
from ivr.flows import FLOWS, FlowDeps, run_flow
from ivr.knowledge import load_knowledge
from ivr.prompts import all_prompts
from ivr.queue_stats import QueueSnapshot, StaticQueueStats
from ivr.settings import IvrSettings
from ivr.testing import ScriptedPeer, ScriptedTransport, agi_headers, env_of
from ivr.tickets import InMemoryTicketSink
from telephony.ticket_context import TicketContext

CALM = QueueSnapshot(waiting=2, avg_hold_s=30, agents=1)  # 90 s estimated
SURGE = QueueSnapshot(waiting=20, avg_hold_s=60, agents=2)  # 630 s estimated


def make_deps(platform: str = "12345", snap: QueueSnapshot = CALM, **settings) -> FlowDeps:
    return FlowDeps(
        platform=platform,
        queue=f"q{platform}",
        tickets=InMemoryTicketSink(),
        queue_stats=StaticQueueStats(snap),
        knowledge=load_knowledge(),
        settings=replace(IvrSettings(), **settings),
        ticket_ids=lambda p: f"T{p}-test",
    )


async def call(deps: FlowDeps, script: list[str], **headers: str):
    peer = ScriptedPeer(list(script))
    route = f"ingress-{deps.platform}"
    channel = AgiChannel(env_of(agi_headers(route, **headers)), ScriptedTransport(peer))
    outcome = await run_flow(FLOWS[deps.platform], channel, deps)
    known = set(all_prompts())
    assert set(peer.prompts) <= known, set(peer.prompts) - known
    return outcome, peer


def assert_contract(peer: ScriptedPeer, dest: str, **ctx: str) -> None:
    """Ticket vars are set (inherited), and HOTLINE_DEST comes last."""
    assert peer.set_vars[-1] == ("HOTLINE_DEST", dest)
    final = peer.final_vars
    for field_name, value in ctx.items():
        assert final[f"__TICKET_{field_name.upper()}"] == value


# ---------------------------------------------------------------- 12345


async def test_category_then_queue_with_announcement():
    outcome, peer = await call(make_deps(), ["1"])
    assert outcome.dest == contract.QUEUE
    assert_contract(
        peer, "queue", id="T12345-test", origin="12345", category="ivr.consult",
        callback="13800138000",
    )
    # position 3 (two waiting), 90 s -> 2 minutes
    tail = peer.prompts[-6:]
    assert tail == [
        "queue_position_before", "num_3", "queue_position_after",
        "queue_wait_before", "num_2", "queue_wait_after",
    ]
    assert "surge_offer" not in peer.prompts


async def test_digit_during_greeting_interrupts_it():
    _, peer = await call(make_deps(), ["4"])
    assert peer.prompts[0] == "greeting_12345"
    assert "menu_categories" not in peer.prompts
    assert peer.final_vars["__TICKET_CATEGORY"] == "ivr.public"


@pytest.mark.parametrize(
    ("script", "dest"),
    [
        (["0"], "110"),  # second key times out -> police at once
        (["0", "timeout"], "110"),
        (["0", "1"], "119"),
        (["0", "2"], "120"),
        (["0", "7"], "110"),  # wrong second key: no retry, police
    ],
)
async def test_emergency_escape(script, dest):
    outcome, peer = await call(make_deps(), script)
    assert outcome.dest == dest
    assert_contract(peer, dest, category="ivr.emergency", urgency="critical")
    assert "queue_position_before" not in peer.prompts


async def test_no_choice_goes_to_queue_unclassified():
    outcome, peer = await call(make_deps(), ["timeout", "timeout"])
    assert outcome.dest == contract.QUEUE
    assert peer.final_vars["__TICKET_CATEGORY"] == "ivr.other"
    assert peer.prompts.count("menu_categories") == 2  # heard twice, then the default


async def test_invalid_key_is_retried():
    _, peer = await call(make_deps(), ["8", "3"])
    assert "invalid_choice" in peer.prompts
    assert peer.final_vars["__TICKET_CATEGORY"] == "ivr.utility"


async def test_invalid_keys_exhaust_to_queue():
    outcome, peer = await call(make_deps(), ["8", "9"])
    assert outcome.dest == contract.QUEUE
    assert peer.final_vars["__TICKET_CATEGORY"] == "ivr.other"


async def test_surge_self_service_resolved_is_done():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["3", "1", "2", "1"])
    assert outcome.dest == contract.DONE
    assert_contract(peer, "done", category="ivr.utility")
    assert "kb_utility_gas_a" in peer.prompts
    [ticket] = deps.tickets.tickets
    assert (ticket.kind, ticket.answered_faq) == ("self_service", "utility_gas")


async def test_surge_self_service_unresolved_goes_to_queue():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["3", "1", "1", "timeout"])
    assert outcome.dest == contract.QUEUE
    assert "kb_utility_outage_a" in peer.prompts
    assert deps.tickets.tickets == []


async def test_surge_self_service_without_choice_goes_to_queue():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["2", "1", "timeout", "timeout"])
    assert outcome.dest == contract.QUEUE
    assert "kb_complaint_progress_q" in peer.prompts


async def test_surge_callback_to_caller_id():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["2", "2", "1"])
    assert outcome.dest == contract.DONE
    assert_contract(peer, "done", category="ivr.complaint", callback="13800138000")
    [ticket] = deps.tickets.tickets
    assert (ticket.kind, ticket.callback_number) == ("callback", "13800138000")
    assert ticket.context.ticket_id == "T12345-test"
    assert "callback_recorded" in peer.prompts


async def test_surge_callback_other_number():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["2", "2", "2", "02012345678"])
    assert outcome.dest == contract.DONE
    assert deps.tickets.tickets[0].callback_number == "02012345678"
    assert peer.final_vars["__TICKET_CALLBACK"] == "02012345678"


async def test_surge_callback_without_caller_id_asks_for_number():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["5", "2", "13900001111"], agi_callerid="anonymous")
    assert outcome.dest == contract.DONE
    assert "callback_confirm" not in peer.prompts
    assert "callback_enter_number" in peer.prompts
    assert deps.tickets.tickets[0].callback_number == "13900001111"


async def test_surge_callback_bad_numbers_fall_back_to_queue():
    deps = make_deps(snap=SURGE)
    outcome, peer = await call(deps, ["5", "2", "12", "timeout"], agi_callerid="")
    assert outcome.dest == contract.QUEUE
    assert "invalid_number" in peer.prompts
    assert deps.tickets.tickets == []


async def test_surge_keep_waiting_and_timeout_queue():
    for script in (["1", "9"], ["1", "timeout", "timeout"]):
        outcome, peer = await call(make_deps(snap=SURGE), script)
        assert outcome.dest == contract.QUEUE
        assert "surge_offer" in peer.prompts
        assert "queue_position_before" in peer.prompts


async def test_surge_threshold_is_configurable_and_forceable():
    _, peer = await call(make_deps(surge_wait_threshold_s=60), ["1", "9"])
    assert "surge_offer" in peer.prompts  # 90 s > 60 s
    _, peer = await call(make_deps(snap=QueueSnapshot(0, 0), surge_forced=True), ["1", "9"])
    assert "surge_offer" in peer.prompts


class BrokenStats:
    async def snapshot(self, queue, channel):
        raise RuntimeError("AMI down")


class BrokenSink:
    async def record(self, ticket):
        raise ConnectionError("redis down")


async def test_queue_stats_failure_still_queues():
    deps = make_deps()
    deps.queue_stats = BrokenStats()
    outcome, peer = await call(deps, ["1"])
    assert outcome.dest == contract.QUEUE
    assert "queue_position_before" not in peer.prompts


async def test_ticket_sink_failure_falls_back_to_queue():
    deps = make_deps(snap=SURGE)
    deps.tickets = BrokenSink()
    outcome, peer = await call(deps, ["2", "2", "1"])
    assert outcome.dest == contract.QUEUE
    assert_contract(peer, "queue", id="T12345-test")


@pytest.mark.parametrize("style", ["-1", "line", "511", "eof"])
async def test_hangup_mid_flow_stops_without_destination(style):
    peer = ScriptedPeer(["1", f"hangup:{style}"])
    channel = AgiChannel(env_of(agi_headers("ingress-12345")), ScriptedTransport(peer))
    with pytest.raises(AgiHangup):
        await run_flow(FLOWS["12345"], channel, make_deps())
    assert "HOTLINE_DEST" not in peer.final_vars


# ---------------------------------------------------------------- 110


@pytest.mark.parametrize("script", [[], ["timeout"], ["1"], ["7"]])
async def test_110_default_is_police_now(script):
    outcome, peer = await call(make_deps("110"), script)
    assert outcome.dest == contract.QUEUE
    assert_contract(peer, "queue", origin="110", urgency="urgent")
    assert "invalid_choice" not in peer.prompts  # no retries on the emergency line


async def test_110_traffic_desk():
    outcome, peer = await call(make_deps("110"), ["2"])
    assert outcome.dest == contract.TRAFFIC
    assert_contract(peer, "122", category="ivr.traffic")


async def test_110_traffic_disabled_means_police():
    deps = make_deps("110", traffic_desk_enabled=False)
    outcome, peer = await call(deps, ["2"])
    assert outcome.dest == contract.QUEUE
    _, peer = await call(deps, [])
    assert "menu_110_no_traffic" in peer.prompts
    assert "menu_110" not in peer.prompts


async def test_110_diversion_accepted_carries_context():
    outcome, peer = await call(make_deps("110"), ["3", "3", "1"])
    assert outcome.dest == contract.HOTLINE
    assert_contract(
        peer, "12345", id="T110-test", origin="110", category="ivr.utility",
        callback="13800138000",
    )
    summary = TicketContext.from_mapping(
        {k.lstrip("_"): v for k, v in peer.final_vars.items()}
    ).summary
    assert summary == "IVR:110分流:水电气暖报修"
    assert "%" in peer.final_vars["__TICKET_SUMMARY"]  # encoded on the wire
    assert peer.final_vars["__TICKET_URGENCY"] == "normal"
    assert "divert_connecting" in peer.prompts


@pytest.mark.parametrize("answer", [["2"], ["timeout"], ["5"]])
async def test_110_diversion_declined_stays_with_police(answer):
    outcome, peer = await call(make_deps("110"), ["3", "1", *answer])
    assert outcome.dest == contract.QUEUE
    assert_contract(peer, "queue", category="ivr.consult")


@pytest.mark.parametrize("script", [["3", "0"], ["3", "timeout", "timeout"]])
async def test_110_non_emergency_menu_back_to_police(script):
    outcome, peer = await call(make_deps("110"), script)
    assert outcome.dest == contract.QUEUE
    assert_contract(peer, "queue", urgency="urgent")


async def test_missing_sound_files_do_not_stop_the_flow():
    """STREAM FILE/GET DATA answer -1 for a missing file: digits still work, a dest is set."""
    for platform, script, dest in (("12345", ["timeout", "2"], "queue"), ("110", [], "queue")):
        peer = ScriptedPeer(script, missing_verbs=("STREAM FILE", "GET DATA"))
        channel = AgiChannel(
            env_of(agi_headers(f"ingress-{platform}")), ScriptedTransport(peer)
        )
        outcome = await run_flow(FLOWS[platform], channel, make_deps(platform))
        assert outcome.dest == dest
        assert peer.final_vars["HOTLINE_DEST"] == dest
    assert peer.final_vars["__TICKET_ORIGIN"] == "110"


async def test_hangup_during_prompt_is_caught_on_the_next_command():
    peer = ScriptedPeer(["hangup:-1"])  # -1 to the prompt, then 511 like a dead channel
    channel = AgiChannel(env_of(agi_headers("ingress-12345")), ScriptedTransport(peer))
    assert await channel.stream_file("greeting_12345", "0") == ""
    with pytest.raises(AgiHangup):
        await channel.wait_for_digit(1000)


def test_the_dialplans_ticket_id_is_kept_and_a_bad_one_replaced() -> None:
    from ivr.agi_protocol import AgiEnv
    from ivr.flows import initial_context

    class _Ch:
        def __init__(self, arg: str) -> None:
            self.env = AgiEnv({"agi_callerid": "13800000000", "agi_arg_1": arg})

    deps = FlowDeps(platform="12345", queue="q12345", tickets=InMemoryTicketSink(),
                    queue_stats=StaticQueueStats(CALM), ticket_ids=lambda p: f"T{p}-fresh")
    assert initial_context(_Ch("T12345-1795919110-0"), deps).ticket_id == "T12345-1795919110-0"
    assert initial_context(_Ch("x\r\nEXEC Dial"), deps).ticket_id == "T12345-fresh"
    assert initial_context(_Ch(""), deps).ticket_id == "T12345-fresh"
