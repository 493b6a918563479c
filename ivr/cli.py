"""`hotline ivr serve|prompts`: run the FastAGI IVR standalone, or render the prompts.

The full service embeds FastAGIServer itself with its Redis ticket sink; `ivr
serve` is for the lab and for sites that run the IVR apart from the service.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace

from ivr.fastagi import FastAGIServer
from ivr.flows import FlowDeps, routes_for
from ivr.prompts import all_prompts, render_prompts
from ivr.queue_stats import DialplanQueueStats
from ivr.settings import IvrSettings
from ivr.tickets import JsonlTicketSink
from telephony.lab.topology import HOST, NODES
from telephony.lifecycle import run_until_signal


def register(subparsers: argparse._SubParsersAction) -> None:
    ivr = subparsers.add_parser("ivr", help="IVR over FastAGI")
    sub = ivr.add_subparsers(dest="ivr_command", required=True)

    serve = sub.add_parser("serve", help="serve one platform's IVR over FastAGI")
    serve.add_argument("--platform", choices=sorted(NODES), required=True)
    serve.add_argument("--host", default=HOST)
    serve.add_argument("--port", type=int, help="default: the lab topology's fastagi_port")
    serve.add_argument("--ticket-log", default="ivr-tickets.jsonl")
    serve.add_argument("--surge-threshold", type=int, help="seconds of estimated wait")
    serve.add_argument("--force-surge", action="store_true", help="always offer self-service")
    serve.set_defaults(func=_serve)

    prompts = sub.add_parser("prompts", help="render the Mandarin prompts (espeak-ng + sox)")
    prompts.add_argument("out_dir", help="<sounds dir>/hotline")
    prompts.set_defaults(func=_prompts)


def settings_from_args(args: argparse.Namespace) -> IvrSettings:
    settings = IvrSettings.from_env()
    if args.surge_threshold is not None:
        settings = replace(settings, surge_wait_threshold_s=args.surge_threshold)
    if args.force_surge:
        settings = replace(settings, surge_forced=True)
    return settings


def _serve(args: argparse.Namespace) -> int:
    node = NODES[args.platform]
    deps = FlowDeps(
        platform=args.platform,
        queue=node.queue,
        tickets=JsonlTicketSink(args.ticket_log),
        queue_stats=DialplanQueueStats(),
        settings=settings_from_args(args),
    )
    port = args.port if args.port is not None else node.fastagi_port
    asyncio.run(run_until_signal(FastAGIServer(routes_for(deps), args.host, port)))
    return 0


def _prompts(args: argparse.Namespace) -> int:
    rendered = render_prompts(all_prompts(), args.out_dir)
    print(f"{len(rendered)} prompt(s) rendered into {args.out_dir}")
    return 0
