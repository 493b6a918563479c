"""`hotline serve`: one platform's service: AMI -> tracker -> Redis, IVR, call control, HTTP.

The wiring only; every part lives in its own module:
  AMI session (telephony.ami) -> event pump -> Tracker (pure model)
      -> ticket timelines, live calls (telephony.store, write-behind to Redis)
      -> Controller.on_event (operations confirmed by events)
      -> HotlineKey UserEvents -> the same operations as the HTTP keys
  FastAGI IVR (ivr.fastagi + ivr.flows), callback tickets into Redis
  HTTP API (telephony.api.app): transfers, conferences, keys, /metrics, /readyz,
    the monitor, and ticket search over the archive (a PostgreSQL pool made on first use)
On every AMI (re)connect the live state is rebuilt from Asterisk and joined
with Redis: calls Redis thinks are live but Asterisk no longer has are closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ivr.fastagi import FastAGIServer
from ivr.flows import FlowDeps, routes_for
from ivr.queue_stats import DialplanQueueStats
from ivr.settings import IvrSettings
from ivr.tickets import IvrTicket
from telephony import metrics
from telephony.ami import AmiDisconnected, AmiError, AmiSession, AmiTimeout
from telephony.api import archive as archive_api
from telephony.api.app import create_app
from telephony.api.tokens import TokenTable
from telephony.archive.measures import Thresholds
from telephony.archive.sla_exporter import SlaExporter
from telephony.control import keys
from telephony.control.controller import FED_EVENTS, Controller
from telephony.control.observe import SetupTimeRecorder
from telephony.control.targets import TargetPolicy
from telephony.directory import TrackerDirectory
from telephony.fact_writes import CALL_BOUNDS
from telephony.lab.topology import HOST, NODES
from telephony.lifecycle import run_until_signal
from telephony.logging import get_logger
from telephony.monitor.feed import DeltaBuilder
from telephony.monitor.hub import MonitorHub
from telephony.monitor.queues import MEMBER_EVENTS, QueueBoard
from telephony.sla import SlaRecorder, timeline
from telephony.store import RedisStore
from telephony.store_process import ProcessStore
from telephony.tracker import Tracker

log = get_logger("telephony.service")


@dataclass(frozen=True)
class AmiTarget:
    name: str
    host: str
    port: int
    username: str
    secret: str


@dataclass(frozen=True)
class ServiceConfig:
    platform: str
    ami: tuple[AmiTarget, ...]
    redis_url: str
    tokens: Mapping[str, Any]
    http_host: str = HOST
    http_port: int = 0
    fastagi_host: str = HOST
    fastagi_port: int = 0
    ivr: IvrSettings = field(default_factory=IvrSettings)
    # The answer threshold, short abandons, connection target and the platform's time
    # zone: for the monitor's queue tiles and the archive's SLA figures alike.
    thresholds: Thresholds = field(default_factory=Thresholds)
    # PostgreSQL for the ticket archive (telephony.archive); empty: no archive.
    # The store's writer process runs the archiver, so it needs the writer process.
    archive_dsn: str = ""
    # Build and send the Redis writes in a writer process (telephony.store_process),
    # off the event loop; False keeps them in this process (RedisStore).
    store_process: bool = True

    @classmethod
    def from_env(cls, platform: str, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Deployment config: HOTLINE_AMI_SECRET, HOTLINE_REDIS_URL, HOTLINE_TOKENS_FILE."""
        env = dict(os.environ if environ is None else environ)
        node = NODES[platform]
        secret = env.get("HOTLINE_AMI_SECRET", "")
        if not secret:
            raise ValueError("HOTLINE_AMI_SECRET is not set")
        tokens_file = env.get("HOTLINE_TOKENS_FILE", "")
        tokens = json.loads(Path(tokens_file).read_text()) if tokens_file else {"tokens": []}
        return cls(
            platform=platform,
            ami=(AmiTarget(node.name, env.get("HOTLINE_AMI_HOST", HOST),
                           int(env.get("HOTLINE_AMI_PORT", node.ami_port)),
                           env.get("HOTLINE_AMI_USER", "hotline"), secret),),
            redis_url=env.get("HOTLINE_REDIS_URL", "redis://127.0.0.1:16379/0"),
            tokens=tokens,
            http_port=node.http_port,
            fastagi_port=node.fastagi_port,
            ivr=IvrSettings.from_env(env),
            thresholds=Thresholds.from_env(env),
            archive_dsn=env.get("HOTLINE_ARCHIVE_DSN", ""),
        )


class AmiSender:
    """Controller's ActionSender over an AmiSession: a lost link is a ConnectionError."""

    def __init__(self, session: AmiSession) -> None:
        self.session = session

    @property
    def ready(self) -> bool:
        return self.session.ready.is_set()

    async def send(self, action: Mapping[str, Any]) -> Any:
        return await self.submit(action)

    def submit(self, action: Mapping[str, Any]) -> Awaitable[Any]:
        try:
            # check=False: an Error reply comes back as the reply (the controller reads it).
            return self._reply(self.session.submit(dict(action), check=False))
        except AmiDisconnected as exc:
            raise ConnectionError(str(exc)) from exc

    @staticmethod
    async def _reply(reply: Awaitable[Any]) -> Any:
        try:
            return await reply
        except AmiDisconnected as exc:
            raise ConnectionError(str(exc)) from exc
        except AmiTimeout as exc:
            raise TimeoutError(str(exc)) from exc


# Either store takes the same buffered writes; the service uses one of them.
Store = RedisStore | ProcessStore


class RedisOpStore:
    """Controller's OpStore: operation records in Redis (write-behind)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._recent: dict[str, dict[str, Any]] = {}
        self._steps_on_timeline: dict[str, int] = {}

    async def save(self, record: Mapping[str, Any]) -> None:
        op_id = str(record["op_id"])
        self._recent[op_id] = dict(record)
        if len(self._recent) > 10_000:
            self._recent.pop(next(iter(self._recent)))
        self.store.update_op(op_id, dict(record))
        self._timeline_steps(op_id, record)

    def _timeline_steps(self, op_id: str, record: Mapping[str, Any]) -> None:
        """Each new operation step also lands on the ticket's timeline (op.<kind>.<state>)."""
        ticket, steps = record.get("ticket_id"), list(record.get("steps") or ())
        written = self._steps_on_timeline.get(op_id, 0)
        for step in steps[written:] if ticket else ():
            detail = {k: v for k, v in step.get("detail", {}).items() if k not in ("kind", "ts")}
            self.store.append_timeline(str(ticket), f"op.{record['kind']}.{step['state']}",
                                       f"{step['at']:.6f}",
                                       {"op_id": op_id, "call_id": record.get("call_id", ""),
                                        **detail})
        self._steps_on_timeline[op_id] = len(steps)
        if len(self._steps_on_timeline) > 10_000:
            self._steps_on_timeline.pop(next(iter(self._steps_on_timeline)))

    async def get(self, op_id: str) -> Mapping[str, Any] | None:
        return self._recent.get(op_id) or await self.store.get_op(op_id)


class RedisTicketSink:
    """IVR tickets (callback requests, self-service) into the ticket store and timeline."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, ticket: IvrTicket) -> None:
        record = ticket.as_record()
        ticket_id = ticket.context.ticket_id
        self.store.put_ticket(ticket_id, record)
        self.store.append_timeline(ticket_id, f"ivr.{ticket.kind}", f"{ticket.created_at:.6f}",
                                   {"callback": ticket.callback_number})


class PlatformService:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.platform = config.platform
        node = NODES[config.platform]
        self.tracker = Tracker()
        self.sla = SlaRecorder()
        self.store: Store = (ProcessStore(config.redis_url, config.platform,
                                          archive_dsn=config.archive_dsn)
                             if config.store_process
                             else RedisStore.from_url(config.redis_url, config.platform))
        self.queue: asyncio.Queue[Any] = asyncio.Queue(50_000)
        # Only the events someone reads: the tracker's, the controller's, and the key presses.
        # Asterisk filters the rest out (AMI Filter): they never reach handle_event.
        self.subscribed_events = frozenset(
            self.tracker.handled_events | FED_EVENTS | MEMBER_EVENTS
            | {"UserEvent", "FullyBooted"})
        self.sessions = [
            AmiSession(t.name, t.host, t.port, t.username, t.secret, event_queue=self.queue,
                       on_connected=self._recover, events=sorted(self.subscribed_events))
            for t in config.ami
        ]
        self.directory = TrackerDirectory(self.tracker, config.platform, node.queue)
        self.controller = Controller(
            platform=config.platform, directory=self.directory,
            sender=AmiSender(self.sessions[0]), store=RedisOpStore(self.store),
            targets=TargetPolicy(config.platform),
            listeners=[SetupTimeRecorder(metrics.TRANSFER_SETUP_SECONDS)],
        )
        deps = FlowDeps(platform=config.platform, queue=node.queue,
                        tickets=RedisTicketSink(self.store), queue_stats=DialplanQueueStats(),
                        settings=config.ivr)
        self.fastagi = FastAGIServer(routes_for(deps), config.fastagi_host, config.fastagi_port)
        thresholds = config.thresholds
        self.queue_board = QueueBoard(service_level_s=thresholds.answer_s,
                                      timezone=thresholds.timezone, started_at=time.time())
        self.monitor = MonitorHub(DeltaBuilder(self.tracker, self.queue_board, config.platform),
                                  self.store)
        # The archive's read pool: made by the first archive request, inside the loop.
        self.archive_pool = (archive_api.LazyPool(
            functools.partial(archive_api.open_pool, config.archive_dsn))
            if config.archive_dsn else None)
        archive = (None if self.archive_pool is None else archive_api.ArchiveApi(
            self.archive_pool, self.store, active=self.tracker.tickets.__contains__,
            thresholds=thresholds))
        # The last 24 h's SLA figures as gauges, from the archive, once a minute.
        self.sla_exporter = (None if self.archive_pool is None
                             else SlaExporter(config.platform, self.archive_pool, thresholds))
        self.app = create_app(self.controller, TokenTable.from_config(config.tokens),
                              hub=self.monitor, archive=archive)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._sla_task: asyncio.Task[None] | None = None
        self.recovered = asyncio.Event()
        self._active_gauge = metrics.CALLS_ACTIVE.labels(platform=config.platform)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        self.store.start()
        await self.monitor.start()
        self._pump = asyncio.create_task(self._pump_events(), name="event-pump")
        if self.sla_exporter is not None:
            self._sla_task = asyncio.create_task(self.sla_exporter.run(), name="sla-figures")
        for session in self.sessions:
            await session.start()
        await self.fastagi.start()
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.http_host, self.config.http_port).start()
        log.info("service.started", platform=self.platform, http_port=self.config.http_port,
                 fastagi_port=self.config.fastagi_port)

    async def stop(self) -> None:
        if self._sla_task is not None:
            self._sla_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sla_task
        await self.monitor.stop()
        await self.fastagi.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.archive_pool is not None:
            await self.archive_pool.close()
        for session in self.sessions:
            await session.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.store.close()
        log.info("service.stopped", platform=self.platform)

    async def wait_ready(self, within: float = 10.0) -> None:
        for session in self.sessions:
            await session.wait_ready(within)
        await asyncio.wait_for(self.recovered.wait(), within)
        # The store's writer process answers a flush once it runs: a caller that
        # starts work right after this no longer shares the CPU with its start-up.
        if not await self.store.flush(within):
            raise TimeoutError("the store's writer process did not start")

    # -- events ----------------------------------------------------------------
    async def _pump_events(self) -> None:
        while True:
            message = await self.queue.get()
            try:
                # Events arrive as plain dicts (AmiEvent); only a stray Message is copied.
                self.handle_event(message if isinstance(message, dict) else dict(message))
            except Exception:  # one bad event must never stop the pump
                log.exception("service.event_failed", event=message.get("Event"))
            # Queue.get() does not yield while events are waiting, so a burst (a
            # transfer emits dozens) would hold the loop and delay a pending HTTP
            # reply or the next action of an operation. Yield between events.
            if not self.queue.empty():
                await asyncio.sleep(0)
            else:  # the burst is read: its monitor messages go out now, one per call
                self.monitor.flush()

    def handle_event(self, event: dict[str, Any]) -> None:
        add_fact = self.store.add_fact
        facts = self.tracker.feed(event)
        for fact in facts:
            self.sla.apply(fact)
            add_fact(fact)  # its timeline step and call record (telephony.fact_writes)
            if fact.kind in CALL_BOUNDS:
                self._active_gauge.set(len(self.tracker.calls))
        if facts:
            self.monitor.note_facts(facts, getattr(event, "received_at", 0.0) or time.time())
        elif event.get("Event") in MEMBER_EVENTS:
            self.monitor.note_member_event(event,
                                           getattr(event, "received_at", 0.0) or time.time())
        self.controller.on_event(event)
        if event.get("Event") == "UserEvent" and keys.from_user_event(event) is not None:
            self._spawn(keys.on_user_event(self.controller, event))

    def sla_timeline(self, *, ticket_id: str | None = None,
                     call_id: str | None = None) -> dict[str, Any] | None:
        """SLA read API: ring/answer/bridge/leave per leg, transfer and conference times."""
        return timeline(self.sla, ticket_id=ticket_id, call_id=call_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("service.key_failed", error=repr(task.exception()))

    # -- recovery ----------------------------------------------------------------
    def _close_vanished_legs(self, node_name: str, listed: set[str]) -> None:
        """Legs of this node that Asterisk no longer lists ended while we were away."""
        prefix = f"{node_name}-"  # Uniqueids start with the node's systemname
        for uid, leg in list(self.tracker.legs.items()):
            if uid.startswith(prefix) and uid not in listed and leg.hangup_at is None:
                self.handle_event(_vanished_hangup(uid, leg.channel))

    async def _recover(self, session: AmiSession) -> None:
        """After every login: rebuild live channels from Asterisk, close what ended meanwhile."""
        try:
            listing = await session.core_show_channels()
        except (AmiError, AmiDisconnected) as exc:
            log.warning("service.recover_failed", node=session.node_name, error=str(exc))
            return
        listed = set()
        for item in listing.items:
            listed.add(item.get("Uniqueid"))
            self.handle_event(dict(item))
        self._close_vanished_legs(session.node_name, listed)
        await self._recover_queue_members(session)
        live_now = set(self.tracker.calls)
        for call_id in await self.store.live_call_ids():
            if call_id not in live_now:
                self.store.end_call(call_id, {"ended_while_away": "1"})
        await self.controller.reconcile()
        session.needs_resync = False
        self.recovered.set()
        log.info("service.recovered", node=session.node_name, channels=len(listing.items),
                 calls=len(live_now))


    async def _recover_queue_members(self, session: AmiSession) -> None:
        """Who is logged in to which queue now (QueueStatus), for the monitor's tiles."""
        try:
            listing = await session.send_list_action({"Action": "QueueStatus"})
        except (AmiError, AmiDisconnected) as exc:
            log.warning("service.queue_status_failed", node=session.node_name, error=str(exc))
            return
        board = self.queue_board
        gone = board.agent_ids()
        board.members.clear()
        now = time.time()
        for item in listing.items:
            self.monitor.note_member_event(dict(item), now)
        self.monitor.note_agents(gone, now)  # logged out while we were away


def _vanished_hangup(uniqueid: str, channel: str) -> dict[str, str]:
    """A Hangup for a leg that ended while we were not listening (cause unknown)."""
    return {"Event": "Hangup", "Uniqueid": uniqueid, "Channel": channel, "Cause": "0",
            "Cause-txt": "ended while the AMI link was down", "Timestamp": f"{time.time():.6f}"}


def lab_config(platform: str) -> ServiceConfig:
    """Config for the lab: AMI secret and API tokens generated by `hotline lab up`."""
    from telephony.lab.lab import Lab

    lab = Lab()
    info = lab.node_info(platform)
    node = NODES[platform]
    return ServiceConfig(
        platform=platform,
        ami=(AmiTarget(node.name, info.ami_host, info.ami_port, info.ami_user, info.ami_secret),),
        redis_url=lab.redis_url, tokens=lab.api_tokens(), http_port=node.http_port,
        fastagi_port=node.fastagi_port, ivr=IvrSettings.from_env(),
        thresholds=Thresholds.from_env(os.environ), archive_dsn=lab.postgres_dsn,
    )


def _serve(args: argparse.Namespace) -> int:
    try:
        config = lab_config(args.platform) if args.lab else ServiceConfig.from_env(args.platform)
        service = PlatformService(config)  # validates tokens, IVR settings, targets
    except (ValueError, KeyError, OSError) as exc:
        print(f"cannot start: {exc}")
        return 2
    asyncio.run(run_until_signal(service))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run one platform's hotline service")
    p.add_argument("--platform", choices=sorted(NODES), required=True)
    p.add_argument("--lab", action="store_true", help="use the lab's generated secrets/tokens")
    p.set_defaults(func=_serve)
