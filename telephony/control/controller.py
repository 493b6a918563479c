"""The controller: validates, authorises, serialises and runs call-control operations.

- one asyncio.Lock per call id (created on demand, dropped when unused), so two
  presses or two supervisors never race on one call;
- idempotency: the same Idempotency-Key, or the same operation on the same call
  within `dedupe_seconds` (a double key press), returns the existing operation;
- nothing is sent while the node is down (503); an action cut off by a
  disconnect marks the operation `interrupted` and is never re-sent: events
  and `reconcile()` after the reconnect settle it.
Operations advance only from AMI events fed to `on_event`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog

from telephony.control import validation
from telephony.control.authz import Principal, require_call_access, require_supervisor
from telephony.control.blind import BlindTransfer
from telephony.control.conference import Conference
from telephony.control.errors import BadInput, Forbidden, NodeUnavailable, NotFound, WrongState
from telephony.control.operation import Action, Operation
from telephony.control.protocols import (
    ActionSender,
    CallDirectory,
    CallView,
    LegView,
    OpListener,
    OpStore,
)
from telephony.control.supervisor import SPY_MODES, ForceHangup, Spy
from telephony.control.targets import TargetPolicy
from telephony.control.warm import WarmTransfer
from telephony.lifecycle import collection_deferred

log = structlog.get_logger(__name__)

# Operations that move the caller: only one of them may be live on a call.
CALL_MOVING = frozenset({"blind_transfer", "warm_transfer", "conference"})
NOT_EXECUTED = frozenset({"rejected", "not_executed"})
# The only events any operation reacts to.
FED_EVENTS = frozenset({
    "BlindTransfer", "AttendedTransfer", "DialBegin", "DialEnd", "BridgeEnter", "Hangup",
    "QueueCallerJoin", "ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd", "ChanSpyStart",
    "ChanSpyStop", "OriginateResponse",
    "DTMFEnd",  # the agent's atxfer keys: tells #1 (abort) from #4 (swap)
})


class Controller:
    def __init__(self, *, platform: str, directory: CallDirectory, sender: ActionSender,
                 store: OpStore, targets: TargetPolicy, clock: Callable[[], float] = time.time,
                 dedupe_seconds: float = 3.0, history: int = 10000,
                 listeners: Iterable[OpListener] = (), bridge_settle: float = 0.5) -> None:
        self.platform = platform
        self.directory = directory
        self.sender = sender
        self.store = store
        self.targets = targets
        self.clock = clock
        self.dedupe_seconds = dedupe_seconds
        self.history = history
        self.listeners = list(listeners)
        # How long a press may wait for its call's BridgeEnter to reach us (_build_settled).
        self.bridge_settle = bridge_settle
        self._bridge_waiters: list[asyncio.Future[None]] = []
        self._ops: OrderedDict[str, Operation] = OrderedDict()
        self._active: dict[str, Operation] = {}
        self._by_call: dict[str, list[str]] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._key_of: dict[str, tuple[str, str]] = {}  # op id -> its _by_key key
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- public operations ---------------------------------------------
    async def blind_transfer(self, who: Principal, call_id: str, target: str, *,
                             leg_id: str | None = None,
                             idempotency_key: str | None = None) -> Operation:
        spec = self.targets.resolve(target)

        def build(call: CallView) -> Operation:
            agent, caller = self._two_party(who, call, leg_id)
            return BlindTransfer(agent_channel=agent.channel, agent_uid=agent.leg_id,
                                 caller_channel=caller.channel, caller_uid=caller.leg_id,
                                 target_spec=spec, **self._base(who, call))

        return await self._create(who, call_id, "blind_transfer", spec.number, idempotency_key,
                                  build)

    async def warm_transfer(self, who: Principal, call_id: str, target: str, *,
                            leg_id: str | None = None,
                            idempotency_key: str | None = None) -> Operation:
        spec = self.targets.resolve(target)

        def build(call: CallView) -> Operation:
            agent, caller = self._two_party(who, call, leg_id)
            return WarmTransfer(agent_channel=agent.channel, agent_uid=agent.leg_id,
                                caller_channel=caller.channel, caller_uid=caller.leg_id,
                                home_bridge=agent.bridge_id, target_spec=spec,
                                **self._base(who, call))

        return await self._create(who, call_id, "warm_transfer", spec.number, idempotency_key,
                                  build)

    async def conference(self, who: Principal, call_id: str, target: str | None = None, *,
                         purpose: str = "three_party", leg_id: str | None = None,
                         idempotency_key: str | None = None) -> Operation:
        """Three-party call (default target: the other platform) or emergency pull-in.

        If the call already has a live conference, the target joins that one.
        """
        spec = self.targets.resolve(target or self.targets.other_platform)
        if purpose == "pull_in" and not spec.is_emergency_desk:
            raise BadInput("pull-in is for 119, 120 or 122", code="invalid_target")
        live = self._live_conference(call_id)
        if isinstance(live, Conference):
            self._authorised_call(who, call_id)
            if live.has_party(spec.number):
                return live  # a repeated press: the same operation
            return await self.add_participant(who, live.op_id, spec.number)

        def build(call: CallView) -> Operation:
            agent, caller = self._two_party(who, call, leg_id)
            op = Conference(agent_channel=agent.channel, agent_uid=agent.leg_id,
                            caller_channel=caller.channel, caller_uid=caller.leg_id,
                            first_receiver=self._first_receiver(call), ticket=call.ticket,
                            purpose=purpose, target=spec.number, **self._base(who, call))
            op.add(spec, self.clock())
            return op

        return await self._create(who, call_id, "conference", spec.number, idempotency_key,
                                  build)

    async def operation_verb(self, who: Principal, op_id: str, verb: str,
                             **kwargs: Any) -> Operation:
        """complete / cancel / swap (transfers), leave / drop / negotiate (conferences)."""
        op = self.get(who, op_id)
        if verb not in op.VERBS:
            raise WrongState(f"{op.kind} does not support {verb}", code="unsupported_verb")
        if verb in ("drop", "add") or (verb == "negotiate" and who.role == "agent"):
            self._require_party_or_supervisor(who, op)
        self._require_ready()
        async with self._call_lock(op.call_id):
            if verb == "add" and isinstance(op, Conference) and op.has_party(
                    kwargs["target"].number):
                return op  # two presses raced to the lock: the second is the same request
            actions = op.request(verb, self.clock(), **kwargs)
            executed = await self._execute(op, actions)
        if not executed:
            raise WrongState(f"{verb} was refused by Asterisk or cut off", code="action_rejected",
                             op_id=op.op_id, interrupted=op.interrupted)
        return op

    async def add_participant(self, who: Principal, op_id: str, target: str) -> Operation:
        spec = self.targets.resolve(target)
        return await self.operation_verb(who, op_id, "add", target=spec)

    async def spy(self, who: Principal, call_id: str, mode: str, *, leg_id: str | None = None,
                  endpoint: str | None = None,
                  idempotency_key: str | None = None) -> Operation:
        require_supervisor(who, self.platform)
        if mode not in SPY_MODES:
            raise BadInput("mode must be listen, whisper or barge", code="invalid_spy_mode")
        phone = validation.token(endpoint or who.endpoint, "endpoint")
        key = f"{mode}:{leg_id or 'agent'}"  # a repeated request is the same spy

        def build(call: CallView) -> Operation:
            leg = self._leg(call, leg_id) if leg_id else call.agent_leg()
            if leg is None:
                raise WrongState("no agent leg to spy on", code="no_agent_leg")
            return Spy(mode=mode, supervisor_endpoint=phone, spied_channel=leg.channel,
                       spied_uid=leg.leg_id, target=key,
                       **self._base(who, call))

        return await self._create(who, call_id, "spy", key, idempotency_key, build)

    async def hangup_leg(self, who: Principal, call_id: str, leg_id: str) -> Operation:
        require_supervisor(who, self.platform)

        def build(call: CallView) -> Operation:
            leg = self._leg(call, leg_id)
            return ForceHangup(channel=leg.channel, uniqueid=leg.leg_id, target=leg.leg_id,
                               **self._base(who, call))

        return await self._create(who, call_id, "hangup", leg_id, None, build)

    def get(self, who: Principal, op_id: str) -> Operation:
        op = self._ops.get(op_id)
        if op is None:
            raise NotFound("no such operation", code="operation_not_found")
        if who.role == "agent" and op.initiator != who.subject:
            call = self.directory.get_call(op.call_id)
            if call is None or who.subject not in call.agents():
                raise Forbidden("not your operation", code="not_your_call")
        return op

    def live_op(self, call_id: str, kind: str) -> Operation | None:
        return next((op for op in self._call_ops(call_id) if op.kind == kind and not op.done),
                    None)

    # --- events and recovery -------------------------------------------
    def on_event(self, event: Mapping[str, Any]) -> None:
        """Feed one AMI event to every live operation (pure); send follow-ups in tasks."""
        if self._bridge_waiters and event.get("Event") == "BridgeEnter":
            self._wake_bridge_waiters()  # the tracker has already taken this event in
        if not self._active or event.get("Event") not in FED_EVENTS:
            return  # most AMI traffic (Newexten, VarSet, RTCP...) concerns no operation
        now = self.clock()
        for op in list(self._active.values()):
            before = (op.state, len(op.steps))
            follow = op.feed(event, now)
            if follow:
                self._spawn(self._follow_up(op, follow))
            elif (op.state, len(op.steps)) != before:
                self._changed(op)

    async def reconcile(self) -> None:
        """After an AMI reconnect: settle live operations from the live call state."""
        now = self.clock()
        for op in list(self._active.values()):
            op.reconcile(self.directory.get_call(op.call_id), now)
            self._changed(op)

    async def drain(self) -> None:
        """Wait for follow-up sends and store writes (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- internals ------------------------------------------------------
    async def _create(self, who: Principal, call_id: str, kind: str, target: str | None,
                      idempotency_key: str | None,
                      build: Callable[[CallView], Operation]) -> Operation:
        if idempotency_key is not None:
            key = (who.subject, validation.client_key(idempotency_key))
            if key in self._by_key and self._by_key[key] in self._ops:
                return self._ops[self._by_key[key]]
        self._require_ready()
        # A repeated press by the same person is the same operation, even when the
        # first one has already moved the call away from them (so checked first).
        existing = self._duplicate(call_id, kind, target, who.subject)
        if existing is not None:
            return existing
        self._authorised_call(who, call_id)
        async with self._call_lock(call_id):
            existing = self._duplicate(call_id, kind, target, who.subject)
            if existing is not None:
                return existing
            op = await self._build_settled(who, call_id, kind, build)
            self._register(op, who, idempotency_key)
            await self._execute(op, op.start(self.clock()))
        if op.state == "rejected":
            raise WrongState("Asterisk refused the action", code="action_rejected",
                             op_id=op.op_id)
        return op

    async def _build_settled(self, who: Principal, call_id: str, kind: str,
                             build: Callable[[CallView], Operation]) -> Operation:
        """Build the operation; if the agent is not bridged yet, wait for a bridge a moment.

        A press can overtake the events that tell us the call is bridged: once in the
        lab (1 call/s) this service saw a call's BridgeEnter 320 ms after Asterisk
        raised it, and a press 300 ms after the bridge got 409 not_bridged. So a
        not_bridged press re-checks on each BridgeEnter for up to `bridge_settle`
        seconds before the 409 stands. Runs under the call lock: presses on this call
        queue behind it, others do not.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bridge_settle
        while True:
            call = self._authorised_call(who, call_id)  # re-read: it may have changed
            self._refuse_conflict(call_id, kind)
            try:
                return build(call)
            except WrongState as exc:
                left = deadline - loop.time()
                if exc.code != "not_bridged" or left <= 0:
                    raise
            waiter: asyncio.Future[None] = loop.create_future()
            self._bridge_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                pass  # one more check, then the 409 stands
            finally:
                if waiter in self._bridge_waiters:
                    self._bridge_waiters.remove(waiter)

    def _wake_bridge_waiters(self) -> None:
        waiters, self._bridge_waiters = self._bridge_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _authorised_call(self, who: Principal, call_id: str) -> CallView:
        call = self.directory.get_call(call_id)
        if call is None:
            raise NotFound("no such call", code="call_not_found")
        require_call_access(who, call, self.platform)
        return call

    def _require_ready(self) -> None:
        if not self.sender.ready:
            raise NodeUnavailable("the Asterisk node is not connected", code="node_unavailable")

    def _require_party_or_supervisor(self, who: Principal, op: Operation) -> None:
        if who.role != "agent":
            return
        call = self.directory.get_call(op.call_id)
        if call is None or who.subject not in call.agents():
            raise Forbidden("not a party to this call", code="not_your_call")

    def _two_party(self, who: Principal, call: CallView,
                   leg_id: str | None) -> tuple[LegView, LegView]:
        """The acting agent leg and the caller it is bridged with (409 otherwise)."""
        if leg_id is not None:
            agent: LegView | None = self._leg(call, leg_id)
            if who.role == "agent" and agent is not None and agent.agent_id != who.subject:
                raise Forbidden("not your leg", code="not_your_leg")
        else:
            agent = call.agent_leg(who.subject if who.role == "agent" else None)
        if agent is None or not agent.up:
            raise WrongState("no live agent leg on this call", code="no_agent_leg")
        peer = call.bridged_peer(agent)
        if peer is None:
            raise WrongState("the agent is not bridged with the caller", code="not_bridged")
        return agent, peer

    @staticmethod
    def _leg(call: CallView, leg_id: str) -> LegView:
        leg = call.leg(leg_id)
        if leg is None:
            raise NotFound("no such leg on this call", code="leg_not_found")
        return leg

    def _first_receiver(self, call: CallView) -> str:
        origin = call.ticket.origin if call.ticket else ""
        return origin if origin in ("12345", "110") else call.platform

    def _base(self, who: Principal, call: CallView) -> dict[str, Any]:
        return {"op_id": uuid.uuid4().hex[:16], "call_id": call.call_id,
                "platform": self.platform, "initiator": who.subject, "now": self.clock(),
                "ticket_id": call.ticket.ticket_id if call.ticket else None}

    def _call_ops(self, call_id: str) -> list[Operation]:
        return [self._ops[i] for i in self._by_call.get(call_id, ()) if i in self._ops]

    def _live_conference(self, call_id: str) -> Operation | None:
        return self.live_op(call_id, "conference")

    def _duplicate(self, call_id: str, kind: str, target: str | None,
                   initiator: str) -> Operation | None:
        now = self.clock()
        for op in reversed(self._call_ops(call_id)):
            if op.kind != kind or op.target != target or op.initiator != initiator:
                continue
            if not op.done:
                return op
            recent = now - op.created_at <= self.dedupe_seconds
            if recent and op.outcome not in NOT_EXECUTED:
                return op
        return None

    def _refuse_conflict(self, call_id: str, kind: str) -> None:
        if kind not in CALL_MOVING:
            return
        for op in self._call_ops(call_id):
            if op.kind in CALL_MOVING and not op.done:
                raise WrongState(f"{op.kind} {op.op_id} is in progress on this call",
                                 code="operation_in_progress", op_id=op.op_id)

    def _register(self, op: Operation, who: Principal, idempotency_key: str | None) -> None:
        self._ops[op.op_id] = op
        self._active[op.op_id] = op
        self._by_call.setdefault(op.call_id, []).append(op.op_id)
        if idempotency_key is not None:
            key = (who.subject, idempotency_key)
            self._by_key[key] = op.op_id
            self._key_of[op.op_id] = key
        self._prune()

    def _prune(self) -> None:
        """Bound memory: forget the oldest finished operations (the store keeps them).

        Runs on every new operation once `history` is reached, so it must not scan
        the history: an operation's idempotency key is found through `_key_of`.
        """
        while len(self._ops) > self.history:
            oldest = next((i for i, o in self._ops.items() if o.done), None)
            if oldest is None:
                return
            op = self._ops.pop(oldest)
            ids = self._by_call.get(op.call_id, [])
            if oldest in ids:
                ids.remove(oldest)
            if not ids:
                self._by_call.pop(op.call_id, None)
            key = self._key_of.pop(oldest, None)
            if key is not None and self._by_key.get(key) == oldest:
                del self._by_key[key]

    @asynccontextmanager
    async def _call_lock(self, call_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(call_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            # Every operation's actions are sent under this lock: no collector pause
            # may land between the press and its action (telephony.lifecycle).
            with collection_deferred():
                async with lock:
                    yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[call_id]

    async def _execute(self, op: Operation, actions: list[Action]) -> bool:
        """Send in order; stop at the first refused or cut-off action. True if all went.

        A Setvar followed by another action is pipelined (`_pipeline_setvar`): the
        press waits only for the reply that decides the operation.
        """
        ok = True
        for i, action in enumerate(actions):
            if str(action.get("Async", "")).lower() == "true":
                # An async Originate's reply waits for the answer: don't hold the call lock.
                self._spawn(self._send(op, action))
            elif action.get("Action") == "Setvar" and i + 1 < len(actions):
                self._pipeline_setvar(op, action)
            elif not await self._send(op, action):
                ok = False
                break
        self._changed(op)
        return ok

    def _pipeline_setvar(self, op: Operation, action: Action) -> None:
        """Write a Setvar now and read its reply in the background.

        Asterisk runs one AMI session's actions in the order they arrive, so the
        variable is set before the next action runs. Written in this loop turn, not
        from a task (which would start a turn later, behind whatever the loop has
        queued), and not waited for: at 8 calls/s that wait was 2.4 ms (p50) of a
        key press's HTTP reply, spent on the loop's other work after the transfer.
        """
        try:
            reply = self.sender.submit(action)
        except ConnectionError:
            return  # the next action meets the same link and is judged there
        self._spawn(self._setvar_reply(op, action, reply))

    async def _setvar_reply(self, op: Operation, action: Action, reply: Awaitable[Any]) -> None:
        """A refused Setvar is noted on the operation, not fatal: Asterisk refuses it only
        for a channel that is gone, and then the action after it fails on its own and
        decides the operation."""
        try:
            first, _ = _split_reply(await reply)
        except (ConnectionError, TimeoutError):
            return  # the next action met the same link and was judged there
        if _refused(first):
            op.note(self.clock(), setvar_refused=str(action.get("Variable")),
                    message=str(first.get("Message", "")))
            self._changed(op)

    async def _send(self, op: Operation, action: Action) -> bool:
        try:
            reply = await self.sender.send(action)
        except (ConnectionError, TimeoutError) as exc:
            # It may or may not have run; never re-send. Events/reconcile decide.
            op.interrupted = True
            op.note(self.clock(), interrupted=str(action.get("Action")), error=type(exc).__name__)
            self._changed(op)
            return False
        first, extra = _split_reply(reply)
        if _refused(first):
            if action.get("Action") == "Originate":
                # A refused Originate is a failed dial: the operation treats it as one.
                extra = [{"Event": "OriginateResponse", "Response": "Failure",
                          "Channel": action.get("Channel", ""),
                          "Reason": str(first.get("Message", ""))}]
                await self._execute(op, op.reply_events(extra, self.clock()))
                return False
            op.action_failed(first, self.clock())
            self._changed(op)
            return False
        follow = op.reply_events(extra, self.clock())
        if follow:
            await self._execute(op, follow)
        self._changed(op)
        return True

    async def _follow_up(self, op: Operation, actions: list[Action]) -> None:
        async with self._call_lock(op.call_id):
            await self._execute(op, actions)

    def _changed(self, op: Operation) -> None:
        self._spawn(self.store.save(op.to_dict()))
        if op.done and self._active.pop(op.op_id, None) is not None:
            for listener in self.listeners:
                listener.op_finished(op)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A failed follow-up or store write must be visible, not a silent warning.
            log.error("control_task_failed", error=repr(task.exception()))


def _refused(first: Mapping[str, Any]) -> bool:
    """Asterisk answered the action with an error (not a lost link)."""
    return str(first.get("Response", "Success")) in ("Error", "Failure", "Fail")


def _split_reply(reply: Any) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    """panoramisk returns a list for multi-message replies (e.g. Async Originate)."""
    if isinstance(reply, list):
        if not reply:
            return {}, []
        return reply[0], list(reply[1:])
    return (reply if isinstance(reply, Mapping) else {}), []
