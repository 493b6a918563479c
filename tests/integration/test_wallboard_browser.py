"""The supervisor wallboard in a real browser: Debian's chromium, headless, driven by playwright.

One test follows a one-key transfer on the real lab, as a supervisor would
watch it. The others need no lab: a scripted feed server (aiohttp, loopback)
serves the page and plays exact messages, to check that caller text is shown
as text, the 超时 mark, a spy button's request and error line, that a too-slow
close resumes with `since`, the login form, and the fall-back to Server-Sent
Events when WebSocket never opens.

Screenshots go to $HOTLINE_TEST_ARTIFACTS (default: the test's tmp_path).
Playwright must never download a browser: it drives /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import Page, async_playwright, expect

from telephony.api.monitor import WALLBOARD_DIR
from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import running_services
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
P12345 = NODES["12345"].http_port
PRESS_CATEGORY = [(1500, "2")]  # 12345 IVR: 2 = complaint
HOSTILE = "<img src=x onerror=alert(1)>投诉"
LIVE = '#conn[data-state="live"]'

# Records, inside the page, each state (and its label) every call tile shows, in
# order, and the calls the 转接中 panel listed: a transfer can be over between two
# polls from here, never between two renders.
RECORD_STATES = """() => {
  window.seenStates = [];
  window.seenTransferring = new Set();
  const record = () => {
    for (const row of document.querySelectorAll("#transfers [data-call-id]")) {
      window.seenTransferring.add(row.dataset.callId);
    }
    for (const node of document.querySelectorAll('#calls [data-call-id] [data-field="state"]')) {
      const id = node.closest("[data-call-id]").dataset.callId;
      const last = window.seenStates.filter((s) => s[0] === id).at(-1);
      if (!last || last[1] !== node.dataset.state) {
        window.seenStates.push([id, node.dataset.state, node.textContent]);
      }
    }
  };
  new MutationObserver(record).observe(document.getElementById("board"),
                                       {subtree: true, childList: true});
}"""


def artifacts_dir(tmp_path: Path) -> Path:
    path = Path(os.environ.get("HOTLINE_TEST_ARTIFACTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


async def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = artifacts_dir(tmp_path) / name
    await page.screenshot(path=str(path), full_page=True)
    print(f"wallboard screenshot: {path}")


@asynccontextmanager
async def browser_page() -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh headless chromium page, and the script errors it raises (to assert none)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            await browser.close()


async def test_the_wallboard_follows_a_one_key_transfer_live(lab: Lab, tmp_path: Path) -> None:
    sup = lab.token_for("supervisor12345")
    async with running_services(), \
            logged_in_agent(lab, "12345", keys=[(2000, "*1")]) as first, \
            logged_in_agent(lab, "110") as police, \
            browser_page() as (page, errors):
        await page.goto(f"http://127.0.0.1:{P12345}/wallboard/#token={sup}")
        await page.wait_for_selector(LIVE, timeout=10_000)
        await page.evaluate(RECORD_STATES)
        url_after_login = page.url
        call = asyncio.create_task(citizen_call(
            number="12345", port=NODES["12345"].sip_port, caller="13811112222",
            dtmf=PRESS_CATEGORY, talk_s=12))
        tile = page.locator("#calls [data-call-id]").first
        await tile.wait_for(timeout=15_000)
        call_id = await tile.get_attribute("data-call-id")
        this_call = page.locator(f'[data-call-id="{call_id}"]')
        await expect(this_call.locator('[data-field="callback"] .value')).to_have_text(
            "13811112222", timeout=10_000)
        await page.wait_for_function(
            "id => window.seenStates.some(s => s[0] === id && s[1] === 'transferring')",
            arg=call_id, timeout=15_000)
        await screenshot(page, tmp_path, "wallboard-transfer.png")
        await expect(page.locator('[data-queue="q12345"]')).to_be_visible()
        res = await call
        await first.wait_for_calls(1, ended=True)
        await police.wait_for_calls(1, ended=True)
        await expect(this_call).to_have_count(0, timeout=10_000)
        seen = [(s, label) for i, s, label in await page.evaluate("window.seenStates")
                if i == call_id]
        in_panel = await page.evaluate("id => window.seenTransferring.has(id)", call_id)
    assert res.ok, res.errors
    assert "token=" not in url_after_login, "the token should leave the address bar"
    # On the board before the transfer, then the transfer, labelled in Chinese.
    assert seen.index(("transferring", "转接中")) > 0, seen
    assert in_panel, "the 转接中 panel should have listed the call"
    assert not errors, errors


# -- a scripted feed, no lab ------------------------------------------------------
def a_call(call_id: str, state: str, now: float, **extra: Any) -> dict[str, Any]:
    """A call view as docs/monitor.md describes it (only what the page reads)."""
    legs = [{"leg_id": f"{call_id}.1", "channel": "PJSIP/citizen-0001", "role": "caller",
             "agent": None, "state": "up", "caller_num": "13800000001", "held": False},
            {"leg_id": f"{call_id}.2", "channel": "PJSIP/agent12345-1-0002", "role": "agent",
             "agent": "agent12345-1", "state": "up", "caller_num": "", "held": False}]
    return {"call_id": call_id, "platform": "12345", "origin": "12345", "state": state,
            "started_at": now - 40, "queue": None, "home_queue": "q12345",
            "waiting_since": None, "agents": ["agent12345-1"], "legs": legs,
            "ticket": {"id": f"T-{call_id}", "origin": "12345", "category": "ivr.complaint",
                       "callback": "13800000001", "division": "", "urgency": "",
                       "summary": HOSTILE},
            "transfer": None, "conference": None, **extra}


def a_queue(now: float) -> dict[str, Any]:
    return {"name": "q12345", "waiting": 1, "oldest_waiting_since": now - 30,
            "agents": {"logged_in": 1, "free": 0, "busy": 1},
            "service_level_s": 15,
            "today": {"answered": 4, "answered_within_sl": 3, "abandoned": 0,
                      "service_level": 0.75}}


class ScriptedFeed:
    """Serves the wallboard and a monitor feed that plays `script(conn_no, query)`."""

    def __init__(self, *, websocket: bool = True) -> None:
        self.websocket = websocket
        self.queries: list[dict[str, str]] = []
        self.spies: list[tuple[str, str, Any]] = []  # (call id, Authorization, body)
        self.too_slow = asyncio.Event()  # set: the first WebSocket is closed with 4008
        self.app = web.Application()
        self.app.router.add_get("/wallboard/", self.page)
        self.app.router.add_static("/wallboard/static/", WALLBOARD_DIR)
        self.app.router.add_get("/api/v1/queues", self.token_check)
        self.app.router.add_get("/api/v1/monitor", self.monitor)
        self.app.router.add_post("/api/v1/calls/{call_id}/spy", self.spy)

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WALLBOARD_DIR / "index.html")

    async def token_check(self, request: web.Request) -> web.Response:
        return web.json_response({})  # any token is good here

    def messages(self, query: dict[str, str]) -> list[dict[str, Any]]:
        now = time.time()
        if "since" in query:  # the resume: exactly what came after
            return [{"v": 1, "type": "call", "op": "remove", "seq": 12, "call_id": "c1",
                     "facts": ["call.ended"]}]
        queued = a_call("c2", "queued", now, queue="q12345", waiting_since=now - 30,
                        agents=[], legs=[])
        return [{"v": 1, "type": "snapshot", "seq": 10, "reason": "connect",
                 "platform": "12345", "now": now, "queues": [a_queue(now)],
                 "calls": [a_call("c1", "talking", now), queued], "agents": []},
                {"v": 1, "type": "call", "op": "upsert", "seq": 11,
                 "call": a_call("c1", "transferring", now, transfer={
                     "kind": "blind_transfer", "status": "dialing", "destination": "110",
                     "initiated_at": now - 2})}]

    async def spy(self, request: web.Request) -> web.Response:
        self.spies.append((request.match_info["call_id"],
                           request.headers.get("Authorization", ""), await request.json()))
        return web.json_response({"error": {"code": "no_agent_leg",
                                            "message": "no agent leg to spy on"}}, status=409)

    async def monitor(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if not self.websocket:
                raise web.HTTPServiceUnavailable()  # as a proxy that blocks WebSocket would
            self.queries.append(query)
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            for msg in self.messages(query):
                await ws.send_str(json.dumps(msg))
            if len(self.queries) == 1:
                await self.too_slow.wait()
                await ws.close(code=4008, message=b"too slow")
            else:
                async for _ in ws:
                    pass
            return ws
        self.queries.append(query)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for msg in self.messages(query)[:1]:
            await resp.write(f"id: {msg['seq']}\nevent: {msg['type']}\n"
                             f"data: {json.dumps(msg)}\n\n".encode())
        await asyncio.sleep(30)  # held open until the page goes
        return resp

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}"
        finally:
            await runner.cleanup()


async def test_caller_text_is_text_and_a_too_slow_close_resumes_with_since(
        tmp_path: Path) -> None:
    server = ScriptedFeed()
    async with server.serving() as base, browser_page() as (page, errors):
        await page.goto(f"{base}/wallboard/#token=sup-token")
        await page.wait_for_selector(LIVE, timeout=10_000)
        await expect(page.locator("#login")).to_be_hidden()
        c1, c2 = page.locator('[data-call-id="c1"]'), page.locator('[data-call-id="c2"]')
        await expect(c1.locator('[data-field="state"]')).to_have_text("转接中")
        await expect(page.locator('#transfers [data-call-id="c1"]')).to_have_count(1)
        summary = await c1.locator('[data-field="summary"] .value').text_content()
        images = await page.locator("#board img").count()
        await expect(c2).to_have_class("call state-queued breach", timeout=3_000)
        await expect(c2.locator(".breach-label")).to_have_text("超时")
        await expect(c2.locator(".breach-label")).to_be_visible()
        await expect(page.locator('[data-queue="q12345"]')).to_have_class("queue breach")
        await c1.locator('[data-action="listen"]').click()
        await expect(page.locator("#status")).to_have_attribute("data-kind", "error")
        status_line = await page.locator("#status").text_content()
        await screenshot(page, tmp_path, "wallboard-scripted.png")
        # The server closes with 4008 (too slow); the page resumes and gets the remove.
        server.too_slow.set()
        await expect(c1).to_have_count(0, timeout=5_000)
        await expect(page.locator(LIVE)).to_have_count(1)
        stored = await page.evaluate("sessionStorage.getItem('hotline.wallboard.token')")
    assert summary == HOSTILE
    assert images == 0
    assert server.queries == [{"token": "sup-token"}, {"token": "sup-token", "since": "11"}]
    assert stored == "sup-token"
    assert server.spies == [("c1", "Bearer sup-token", {"mode": "listen"})]
    assert status_line is not None and "监听 T-c1" in status_line and "no_agent_leg" in status_line
    assert not errors, errors


async def test_the_login_form_and_the_sse_fallback_when_websocket_never_opens() -> None:
    server = ScriptedFeed(websocket=False)
    async with server.serving() as base, browser_page() as (page, errors):
        await page.goto(f"{base}/wallboard/")
        await expect(page.locator("#board")).to_be_hidden()
        await page.fill('#login input[name="token"]', "sup-token")
        await page.click('#login button[type="submit"]')
        await expect(page.locator("#login")).to_be_hidden()
        await page.wait_for_selector(LIVE, timeout=15_000)
        transport = await page.get_attribute("#conn", "data-transport")
        await expect(page.locator('[data-call-id="c1"] [data-field="state"]')).to_have_text(
            "通话中")
    assert transport == "sse"
    assert server.queries == [{"token": "sup-token"}]
    assert not errors, errors
