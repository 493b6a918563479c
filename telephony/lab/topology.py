"""The lab's fixed topology: which node listens where, and who the SIP peers are.

One place for every port, so the config renderer, the SIPp driver, the tests and
the demo agree. All traffic stays on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Desk:
    """An external emergency desk (119/120/122), played by a SIPp UAS."""

    number: str
    sip_port: int


@dataclass(frozen=True)
class Agent:
    """A static agent endpoint on one node, played by a SIPp UAS on `sip_port`."""

    endpoint: str
    sip_port: int


@dataclass(frozen=True)
class Node:
    """One Asterisk process playing one platform."""

    platform: str  # "12345" or "110"
    sip_port: int
    ami_port: int
    rtp_start: int
    rtp_end: int
    fastagi_port: int  # where the hotline service for this platform serves FastAGI
    http_port: int  # the hotline service's HTTP API for this platform
    queue: str
    agents: tuple[Agent, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"node{self.platform}"


def _agents(platform: str, base_port: int, count: int = 8) -> tuple[Agent, ...]:
    return tuple(Agent(f"agent{platform}-{i}", base_port + i) for i in range(1, count + 1))


NODE_12345 = Node(
    platform="12345",
    sip_port=15060,
    ami_port=15038,
    rtp_start=20000,
    rtp_end=24999,
    fastagi_port=14573,
    http_port=18345,
    queue="q12345",
    agents=_agents("12345", 16100),
)
NODE_110 = Node(
    platform="110",
    sip_port=15061,
    ami_port=15039,
    rtp_start=25000,
    rtp_end=29999,
    fastagi_port=14574,
    http_port=18110,
    queue="q110",
    agents=_agents("110", 16200),
)
NODES: dict[str, Node] = {n.platform: n for n in (NODE_12345, NODE_110)}

DESKS: dict[str, Desk] = {
    "119": Desk("119", 15119),
    "120": Desk("120", 15120),
    "122": Desk("122", 15122),
}

REDIS_PORT = 16379
POSTGRES_PORT = 15432  # the ticket archive (telephony/archive)

# Ports SIPp UACs (citizens, load generators) may bind: 17000-17999, one per process.
CITIZEN_PORT_RANGE = (17000, 17999)
# Media ports for SIPp processes; each process takes a block of 10 from here.
SIPP_MEDIA_PORT_RANGE = (30000, 39999)


def other_platform(platform: str) -> str:
    return "110" if platform == "12345" else "12345"
