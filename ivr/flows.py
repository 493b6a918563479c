"""IVR flows: plain async functions over `Channel`.

Each flow returns an `Outcome` (destination + ticket context); `finish` writes it
to the channel per the dialplan contract in ivr/contract.py. Every path ends in
a destination: a timeout or invalid key takes the menu's default, any error
that is not a hangup ends in the queue.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog
from prometheus_client import Counter

from ivr import contract, menus
from ivr.agi_protocol import AgiHangup
from ivr.channel import ANY_DIGIT, Channel
from ivr.knowledge import Faq, KnowledgeBase, load_knowledge
from ivr.numbers import minutes_of, number_prompts
from ivr.queue_stats import QueueStats, estimated_wait_s
from ivr.settings import IvrSettings
from ivr.tickets import IvrTicket, TicketSink, new_ticket_id
from telephony.ticket_context import TicketContext

OUTCOMES = Counter("hotline_ivr_outcomes_total", "IVR flow outcomes", ["route", "dest"])
FLOW_ERRORS = Counter("hotline_ivr_flow_errors_total", "IVR flows that fell back to the queue")

ROUTES = {"12345": "ingress-12345", "110": "ingress-110"}
_TICKET_ID = re.compile(r"^T[0-9]{3,5}-[A-Za-z0-9-]{1,32}$")
_CALLBACK = re.compile(r"^\+?[0-9]{3,20}$")

log = structlog.get_logger("ivr.flows")


@dataclass
class FlowDeps:
    platform: str  # "12345" or "110"
    queue: str  # the node's own queue, for statistics
    tickets: TicketSink
    queue_stats: QueueStats
    knowledge: KnowledgeBase = field(default_factory=load_knowledge)
    settings: IvrSettings = field(default_factory=IvrSettings)
    ticket_ids: Callable[[str], str] = new_ticket_id


@dataclass(frozen=True)
class Outcome:
    dest: str
    context: TicketContext


Flow = Callable[[Channel, FlowDeps, TicketContext], Awaitable[Outcome]]


# ---------------------------------------------------------------- menu helper


async def menu(
    ch: Channel,
    prompts: Sequence[str],
    keys: str,
    *,
    timeout_ms: int,
    attempts: int,
    intro: Sequence[str] = (),
) -> str:
    """Play prompts, take one key from `keys`; '' when the caller chose nothing valid.

    Any digit interrupts a prompt (so an invalid one can be answered at once);
    `intro` plays only on the first attempt.
    """
    for attempt in range(max(attempts, 1)):
        digit = ""
        for prompt in [*(intro if attempt == 0 else ()), *prompts]:
            digit = await ch.stream_file(prompt, ANY_DIGIT)
            if digit:
                break
        if not digit:
            digit = await ch.wait_for_digit(timeout_ms)
        if digit and digit in keys:
            return digit
        if digit and attempt + 1 < attempts:
            await ch.stream_file("invalid_choice")
    return ""


# ---------------------------------------------------------------- 12345


async def ingress_12345(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome:
    s = deps.settings
    keys = menus.EMERGENCY_KEY + menus.keys_of(menus.CATEGORIES)
    key = await menu(
        ch,
        ["emergency_escape", "menu_categories"],
        keys,
        timeout_ms=s.digit_timeout_ms,
        attempts=s.max_attempts,
        intro=["greeting_12345"],
    )
    if key == menus.EMERGENCY_KEY:
        return await emergency_escape(ch, deps, ctx)
    choice = menus.choice_for(menus.CATEGORIES, key)
    if choice:
        ctx = replace(ctx, category=choice.value, summary=f"IVR:{choice.label}")
    else:
        ctx = replace(ctx, category=menus.DEFAULT_CATEGORY, summary="IVR:未选择")
    return await queue_or_surge(ch, deps, ctx)


async def emergency_escape(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome:
    """After 0: 110 unless the caller names fire or medical within a few seconds."""
    ctx = replace(ctx, category=menus.EMERGENCY_CATEGORY, urgency="critical", summary="IVR:紧急")
    key = await menu(
        ch,
        ["emergency_which"],
        menus.keys_of(menus.EMERGENCY_DESKS),
        timeout_ms=deps.settings.emergency_key_timeout_ms,
        attempts=1,
    )
    desk = menus.choice_for(menus.EMERGENCY_DESKS, key)
    if desk:
        return Outcome(desk.value, replace(ctx, summary=f"IVR:紧急:{desk.label}"))
    return Outcome(menus.EMERGENCY_DEFAULT, ctx)


async def queue_or_surge(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome:
    s = deps.settings
    try:
        snap = await deps.queue_stats.snapshot(deps.queue, ch)
    except AgiHangup:
        raise
    except Exception:
        # No statistics is no reason to keep a caller from the queue.
        log.warning("ivr.queue_stats_failed", exc_info=True)
        snap = None
    wait_s = estimated_wait_s(snap) if snap else 0
    if s.surge_forced or (snap is not None and wait_s > s.surge_wait_threshold_s):
        served = await surge_offer(ch, deps, ctx)
        if served is not None:
            return served
    if snap is not None and s.announce_wait:
        await announce_queue(ch, position=snap.waiting + 1, wait_s=wait_s)
    return Outcome(contract.QUEUE, ctx)


async def announce_queue(ch: Channel, position: int, wait_s: int) -> None:
    prompts = [
        "queue_position_before",
        *number_prompts(position),
        "queue_position_after",
        "queue_wait_before",
        *number_prompts(minutes_of(wait_s)),
        "queue_wait_after",
    ]
    for prompt in prompts:
        await ch.stream_file(prompt)


async def surge_offer(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome | None:
    """Self-service or a callback; None means the caller keeps waiting in the queue."""
    key = await menu(
        ch,
        ["surge_offer"],
        menus.SURGE_SELF_SERVICE + menus.SURGE_CALLBACK + menus.SURGE_KEEP_WAITING,
        timeout_ms=deps.settings.digit_timeout_ms,
        attempts=deps.settings.max_attempts,
    )
    if key == menus.SURGE_SELF_SERVICE:
        return await self_service(ch, deps, ctx)
    if key == menus.SURGE_CALLBACK:
        return await callback_request(ch, deps, ctx)
    return None


def faqs_for(kb: KnowledgeBase, category: str) -> tuple[Faq, ...]:
    """The category's questions; a caller without a category hears the consult ones."""
    return kb.for_category(category) or kb.for_category(menus.CATEGORIES[0].value)


async def self_service(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome | None:
    faqs = faqs_for(deps.knowledge, ctx.category)
    if not faqs:
        return None
    s = deps.settings
    key = await menu(
        ch,
        [f.question_prompt for f in faqs],
        "".join(f.key for f in faqs),
        timeout_ms=s.digit_timeout_ms,
        attempts=s.max_attempts,
        intro=["kb_intro"],
    )
    faq = next((f for f in faqs if f.key == key), None)
    if faq is None:
        return None
    await ch.stream_file(faq.answer_prompt)
    resolved = await menu(
        ch, ["faq_after"], menus.FAQ_RESOLVED, timeout_ms=s.digit_timeout_ms, attempts=1
    )
    if resolved != menus.FAQ_RESOLVED:
        return None
    await deps.tickets.record(IvrTicket("self_service", ctx, answered_faq=faq.id))
    return Outcome(contract.DONE, ctx)


async def callback_request(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome | None:
    s = deps.settings
    number = ctx.callback
    if number:
        use_own = await menu(
            ch, ["callback_confirm"], "12", timeout_ms=s.digit_timeout_ms, attempts=1
        )
        if use_own == "2":
            number = ""
    attempts = 0
    while not number and attempts < s.max_attempts:
        attempts += 1
        digits, _ = await ch.get_data(
            "callback_enter_number", s.digit_timeout_ms, s.callback_max_digits
        )
        if _CALLBACK.match(digits) and len(digits) >= 5:
            number = digits
        elif attempts < s.max_attempts:
            await ch.stream_file("invalid_number")
    if not number:
        return None
    ctx = replace(ctx, callback=number)
    await deps.tickets.record(IvrTicket("callback", ctx, callback_number=number))
    await ch.stream_file("callback_recorded")
    return Outcome(contract.DONE, ctx)


# ---------------------------------------------------------------- 110


async def ingress_110(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome:
    """Emergency first: pressing nothing, 1 or a wrong key reaches a police call-taker at once."""
    s = deps.settings
    urgent = replace(ctx, urgency="urgent")
    keys = menus.POLICE_NOW + menus.POLICE_NON_EMERGENCY
    if s.traffic_desk_enabled:
        keys += menus.POLICE_TRAFFIC
    key = await menu(
        ch,
        ["menu_110" if s.traffic_desk_enabled else "menu_110_no_traffic"],
        keys,
        timeout_ms=s.police_wait_ms,
        attempts=1,
        intro=["greeting_110"],
    )
    if key == menus.POLICE_TRAFFIC:
        traffic = replace(urgent, category="ivr.traffic", summary="IVR:交通事故")
        return Outcome(contract.TRAFFIC, traffic)
    if key == menus.POLICE_NON_EMERGENCY:
        return await diversion_offer(ch, deps, ctx)
    return Outcome(contract.QUEUE, urgent)


async def diversion_offer(ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome:
    """双非 calls: pick a category, then accept the transfer to 12345 (context carried)."""
    s = deps.settings
    key = await menu(
        ch,
        ["menu_categories", "police_back"],
        menus.keys_of(menus.CATEGORIES) + menus.EMERGENCY_KEY,
        timeout_ms=s.digit_timeout_ms,
        attempts=s.max_attempts,
    )
    choice = menus.choice_for(menus.CATEGORIES, key)
    if choice is None:  # 0, nothing or nonsense: a police call-taker decides
        return Outcome(contract.QUEUE, replace(ctx, urgency="urgent"))
    ctx = replace(ctx, category=choice.value, summary=f"IVR:110分流:{choice.label}")
    accept = await menu(
        ch, ["divert_offer"], menus.DIVERT_ACCEPT + "2", timeout_ms=s.digit_timeout_ms, attempts=1
    )
    if accept == menus.DIVERT_ACCEPT:
        await ch.stream_file("divert_connecting")
        return Outcome(contract.HOTLINE, ctx)
    return Outcome(contract.QUEUE, ctx)


# ---------------------------------------------------------------- running a flow


FLOWS: dict[str, Flow] = {"12345": ingress_12345, "110": ingress_110}


def initial_context(ch: Channel, deps: FlowDeps) -> TicketContext:
    """The call's ticket: the id the dialplan already gave it (AGI argument 1), so
    one call keeps one ticket and timeline; a fresh id only when none came."""
    caller = ch.env.callerid
    given = ch.env.get("agi_arg_1")
    return TicketContext(
        ticket_id=given if _TICKET_ID.match(given) else deps.ticket_ids(deps.platform),
        origin=deps.platform,
        callback=caller if _CALLBACK.match(caller) else "",
    )


async def finish(ch: Channel, outcome: Outcome) -> None:
    """Ticket variables first, HOTLINE_DEST last: a set destination means complete context."""
    if outcome.dest not in contract.DESTINATIONS:
        raise ValueError(f"unknown destination {outcome.dest!r}")
    for name, value in outcome.context.channel_vars().items():
        await ch.set_variable(name, value)
    await ch.set_variable(contract.DEST_VAR, outcome.dest)


async def run_flow(flow: Flow, ch: Channel, deps: FlowDeps) -> Outcome:
    """Run a flow to its outcome; any failure but a hangup becomes the queue."""
    ctx = initial_context(ch, deps)
    with structlog.contextvars.bound_contextvars(ticket_id=ctx.ticket_id, platform=deps.platform):
        return await _run_bound(flow, ch, deps, ctx)


async def _run_bound(flow: Flow, ch: Channel, deps: FlowDeps, ctx: TicketContext) -> Outcome:
    log.info("ivr.start")
    try:
        await ch.answer()
        outcome = await flow(ch, deps, ctx)
    except AgiHangup:
        raise
    except Exception:
        FLOW_ERRORS.inc()
        log.exception("ivr.flow_error")
        outcome = Outcome(contract.QUEUE, ctx)
    await finish(ch, outcome)
    OUTCOMES.labels(ROUTES[deps.platform], outcome.dest).inc()
    log.info("ivr.outcome", dest=outcome.dest, category=outcome.context.category)
    return outcome


def routes_for(deps: FlowDeps) -> dict[str, Callable[[Channel], Awaitable[None]]]:
    """FastAGI routes for one platform: {"ingress-12345": handler}."""
    flow = FLOWS[deps.platform]

    async def handler(ch: Channel) -> None:
        await run_flow(flow, ch, deps)

    return {ROUTES[deps.platform]: handler}
