"""Agents at their desks: a SIPp phone that is logged in to its platform's queue."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from telephony.lab.lab import Lab
from telephony.lab.sipp import SippAgent
from telephony.lab.topology import NODES


@contextlib.asynccontextmanager
async def logged_in_agent(
    lab: Lab, platform: str, index: int = 0, **behaviour: Any
) -> AsyncIterator[SippAgent]:
    """Start agent `index` of `platform` (SippAgent options in `behaviour`), log it in
    to the queue, and log it out and stop it on exit."""
    agent_def = NODES[platform].agents[index]
    agent = await SippAgent.start(port=agent_def.sip_port, user=agent_def.endpoint, **behaviour)
    try:
        lab.agent_login(platform, agent_def.endpoint)
        yield agent
    finally:
        lab.agent_logout(platform, agent_def.endpoint)
        await agent.stop()
