"""Every route in the app is in docs/openapi.yaml, and every documented route exists."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web

from telephony.api.app import create_app
from telephony.api.archive import ArchiveApi
from telephony.api.tokens import TokenTable
from telephony.control.controller import Controller
from telephony.control.protocols import InMemoryOpStore
from telephony.control.targets import TargetPolicy
from telephony.control.testing import FakeDirectory, FakeSender
from telephony.monitor.feed import DeltaBuilder
from telephony.monitor.hub import MonitorHub
from telephony.monitor.queues import QueueBoard
from telephony.monitor.testing import InMemoryMonitorStore
from telephony.tracker import Tracker

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


class NoPool:
    """Stands in for the archive's pool: building the app never asks for it."""

    async def __call__(self) -> object:
        raise AssertionError("the archive pool is made only by an archive request")


class NoTimeline:
    platform = "12345"

    async def timeline(self, ticket_id: str, start: str = "-",
                       count: int = 1000) -> list[tuple[str, dict[str, str]]]:
        return []


def app_routes() -> set[tuple[str, str]]:
    controller = Controller(platform="12345", directory=FakeDirectory(), sender=FakeSender(),
                            store=InMemoryOpStore(), targets=TargetPolicy("12345"))
    app = create_app(controller, TokenTable({}), hub=MonitorHub(
        DeltaBuilder(Tracker(), QueueBoard(), "12345"), InMemoryMonitorStore()),
        archive=ArchiveApi(NoPool(), NoTimeline()))
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        if isinstance(route.resource, web.StaticResource):
            path += "/{filename}"
        out.add((route.method.lower(), path))
    return out


def doc_routes() -> set[tuple[str, str]]:
    doc = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.1")
    return {(method, path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


def test_app_and_openapi_agree() -> None:
    in_app, in_doc = app_routes(), doc_routes()
    assert in_app - in_doc == set(), "routes missing from docs/openapi.yaml"
    assert in_doc - in_app == set(), "documented routes the app does not serve"
    assert {("post", "/api/v1/transfers"), ("get", "/metrics"), ("get", "/api/v1/tickets"),
            ("get", "/api/v1/tickets/export"),
            ("get", "/api/v1/tickets/{ticket_id}/timeline")} <= in_app


def test_every_ref_resolves() -> None:
    doc = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(str(value))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc["paths"])
    walk(doc["components"])
    assert refs
    for ref in refs:
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert node, ref
