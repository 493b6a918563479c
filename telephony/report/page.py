"""The report as one self-contained HTML page, from a window's archive rows. No I/O.

`render_report` takes the rows telephony.archive.sla_source.load returns
(tickets, transfers, conferences; times in epoch seconds) and computes every
number with telephony.archive.measures: a summary table per platform
(figures grouped by platform), a table per transfer direction, tickets by
category, and five charts (telephony.report.charts) inlined as <svg>. Every
text from the archive or the command line is escaped (html.escape).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from telephony.archive.measures import Thresholds, diversion_figures, figures, hand_overs
from telephony.archive.sla_source import Window
from telephony.report import charts

Row = Mapping[str, Any]
Step = Callable[[str], None]
TOP_CATEGORIES = 15

_CSS = """
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; margin: 2em auto;
       max-width: 62em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 2em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #999; vertical-align: bottom; }
.ok { color: #1e7b34; } .bad { color: #b52a1c; } .muted { color: #777; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; display: block; }
figcaption { font-size: .85em; color: #555; margin-top: .3em; }
"""


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def _seconds(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f} s"


def _cell(field: str, value: Any, text: str, cls: str = "") -> str:
    """A table cell carrying its raw value (JSON) beside the formatted text."""
    attrs = f' data-field="{escape(field)}" data-value="{escape(json.dumps(value))}"'
    if cls:
        attrs += f' class="{cls}"'
    return f"<td{attrs}>{escape(text)}</td>"


def _when(ts: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


def _summary_table(groups: Sequence[Mapping[str, Any]], t: Thresholds) -> str:
    head = ("platform", "tickets", "offered", "answered", f"answered ≤ {t.answer_s:g} s",
            "connection rate", "abandon rate", "transfers (succeeded)", "three-party share",
            "hand-off completeness")
    out = ["<table class=\"summary\"><thead><tr>",
           *(f"<th scope=\"col\">{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for g in groups:
        platform = str(g["group"].get("platform", ""))
        a, tp, h = g["answer"], g["three_party"], g["handoff"]
        attempted = sum(x["attempted"] for x in g["transfers"].values())
        succeeded = sum(x["succeeded"] for x in g["transfers"].values())
        met = a["connection_target_met"]
        verdict = "" if met is None else (f" ✓ meets {t.connection_target:.0%}" if met
                                          else f" ✗ below {t.connection_target:.0%}")
        handoff = ("— (none received)" if not h["received"] else
                   f"{_pct(h['mean_field_share'])} of fields; {_pct(h['complete'])} complete;"
                   f" {h['received']} received")
        out += [f"<tr data-platform=\"{escape(platform)}\">",
                f"<th scope=\"row\">{escape(platform)}</th>",
                _cell("tickets", g["tickets"], str(g["tickets"])),
                _cell("offered", a["offered"], str(a["offered"])),
                _cell("answered", a["answered"], str(a["answered"])),
                _cell("answer_service_level", a["answer_service_level"],
                      _pct(a["answer_service_level"])),
                _cell("connection_rate", a["connection_rate"],
                      _pct(a["connection_rate"]) + verdict,
                      "" if met is None else ("ok" if met else "bad")),
                _cell("abandon_rate", a["abandon_rate"], _pct(a["abandon_rate"])),
                _cell("transfers", attempted, f"{attempted} ({succeeded})"),
                _cell("three_party_share", tp["share"], f"{_pct(tp['share'])} ({tp['count']})"),
                _cell("handoff_completeness", h["mean_field_share"], handoff),
                "</tr>"]
    if not groups:
        out.append(f"<tr><td colspan=\"{len(head)}\" class=\"muted\">no tickets in this "
                   "window</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _transfer_table(groups: Sequence[Mapping[str, Any]]) -> str:
    head = ("platform", "direction", "attempted", "succeeded", "success rate", "setup p50",
            "setup p90", "caller drops", "outcomes")
    rows = []
    for g in groups:
        platform = str(g["group"].get("platform", ""))
        for direction, x in g["transfers"].items():
            outcomes = ", ".join(f"{k} {v}" for k, v in x["outcomes"].items())
            rows += [f"<tr data-platform=\"{escape(platform)}\" "
                     f"data-direction=\"{escape(direction)}\">",
                     f"<td>{escape(platform)}</td><td>{escape(direction)}</td>",
                     _cell("attempted", x["attempted"], str(x["attempted"])),
                     _cell("succeeded", x["succeeded"], str(x["succeeded"])),
                     _cell("success_rate", x["success_rate"], _pct(x["success_rate"])),
                     _cell("setup_p50_s", x["setup"]["p50_s"], _seconds(x["setup"]["p50_s"])),
                     _cell("setup_p90_s", x["setup"]["p90_s"], _seconds(x["setup"]["p90_s"])),
                     _cell("caller_drops", x["caller_drops"], str(x["caller_drops"])),
                     f"<td>{escape(outcomes)}</td></tr>"]
    if not rows:
        return "<p class=\"muted\">No transfers in this window.</p>"
    return ("<table class=\"transfers\"><thead><tr>"
            + "".join(f"<th scope=\"col\">{escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _category_table(tickets: Sequence[Row]) -> str:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in tickets:
        counts[str(r.get("category") or "")][str(r.get("platform") or "")] += 1
    if not counts:
        return "<p class=\"muted\">No tickets in this window.</p>"
    platforms = sorted({p for c in counts.values() for p in c})
    ranked = sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    shown, rest = ranked[:TOP_CATEGORIES], ranked[TOP_CATEGORIES:]
    if rest:
        merged: Counter[str] = Counter()
        for _, c in rest:
            merged.update(c)
        shown.append((f"other ({len(rest)} categories)", merged))
    out = ["<table class=\"categories\"><thead><tr><th scope=\"col\">category</th>",
           *(f"<th scope=\"col\">{escape(p)}</th>" for p in platforms),
           "<th scope=\"col\">all</th></tr></thead><tbody>"]
    for category, c in shown:
        name = escape(category) if category else "<span class=\"muted\">(none)</span>"
        out += [f"<tr><td>{name}</td>", *(f"<td>{c.get(p, 0)}</td>" for p in platforms),
                f"<td>{sum(c.values())}</td></tr>"]
    out.append("</tbody></table>")
    return "".join(out)


def _figure(chart: charts.Chart) -> str:
    empty = " — no data in this window" if chart.empty else ""
    return (f"<figure data-chart=\"{chart.name}\" data-empty=\"{str(chart.empty).lower()}\">"
            f"{chart.svg}<figcaption><strong>{escape(chart.title)}</strong>. "
            f"{escape(chart.caption)}{escape(empty)}</figcaption></figure>")


def answer_waits(tickets: Sequence[Row]) -> dict[str, list[float]]:
    """Per platform, each answered ticket's seconds from joining the queue to the answer:
    what measures.answer_figures summarises as `answer_wait`."""
    waits: dict[str, list[float]] = defaultdict(list)
    for r in tickets:
        if r.get("queued_at") is not None and r.get("answered_at") is not None:
            waits[str(r["platform"])].append(max(r["answered_at"] - r["queued_at"], 0.0))
    return dict(waits)


def transfer_setups(transfers: Sequence[Row]) -> tuple[dict[str, list[float]], Counter[str]]:
    """Per direction, each answered transfer's setup seconds (initiation -> the receiving
    answer, as measures.transfer_figures' `setup`), and the attempts."""
    setups: dict[str, list[float]] = defaultdict(list)
    attempts: Counter[str] = Counter()
    for r in hand_overs(transfers):
        direction = r.get("direction") or "unknown"
        attempts[direction] += 1
        if r.get("target_answer_at") is not None:
            setups[direction].append(r["target_answer_at"] - r["initiated_at"])
    return dict(setups), attempts


def build_charts(tickets: Sequence[Row], transfers: Sequence[Row],
                 conferences: Sequence[Row], t: Thresholds,
                 by_platform: Sequence[Mapping[str, Any]],
                 step: Step | None = None) -> list[charts.Chart]:
    """The five charts, in CHARTS order; `by_platform`: figures grouped by platform;
    `step(name)` after each one is drawn."""
    waits = answer_waits(tickets)
    setups, attempts = transfer_setups(transfers)
    by_hour = figures(tickets, transfers, conferences, group_by=("platform", "hour"),
                      thresholds=t)["groups"]
    diversions = diversion_figures(tickets, transfers)
    builders: list[Callable[[], charts.Chart]] = [
        lambda: charts.answer_wait_chart(waits, t.answer_s),
        lambda: charts.sla_by_hour_chart(by_hour, t.connection_target, t.answer_s),
        lambda: charts.transfer_setup_chart(setups, attempts),
        lambda: charts.three_party_chart({str(g["group"]["platform"]): g["three_party"]["ends"]
                                          for g in by_platform}),
        lambda: charts.diversions_chart(diversions["received"], diversions["sent"]),
    ]
    out = []
    for build in builders:
        chart = build()
        out.append(chart)
        if step:
            step(chart.name)
    return out


def render_report(tickets: Sequence[Row], transfers: Sequence[Row], conferences: Sequence[Row],
                  window: Window, platform: str | None, *,
                  thresholds: Thresholds | None = None, generated_at: float | None = None,
                  step: Step | None = None) -> str:
    """The whole page for a window's rows (`platform` None: every platform)."""
    t = thresholds or Thresholds()
    tz = ZoneInfo(t.timezone)
    generated = time.time() if generated_at is None else generated_at
    groups = figures(tickets, transfers, conferences, group_by=("platform",),
                     thresholds=t)["groups"]
    span = f"{_when(window.start, tz)} – {_when(window.end, tz)}"
    scope = "every platform" if platform is None else f"platform {platform}"
    rules = (f"answered within {t.answer_s:g} s (GB/T 33358); connection rate target "
             f"{t.connection_target:.0%}; abandons under {t.short_abandon_s:g} s after joining "
             f"the queue are not counted; hours in {t.timezone}")
    drawn = build_charts(tickets, transfers, conferences, t, groups, step)
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>Hotline SLA report {escape(span)}</title><style>{_CSS}</style></head><body>",
        "<header><h1>Hotline SLA report · 服务水平报告</h1><dl class=\"meta\">",
        f"<dt>Window</dt><dd data-from=\"{window.start}\" data-to=\"{window.end}\">"
        f"{escape(span)} ({escape(t.timezone)}): tickets opened and transfers initiated "
        "from the start, up to but not including the end</dd>",
        f"<dt>Scope</dt><dd>{escape(scope)}</dd>",
        f"<dt>Thresholds</dt><dd>{escape(rules)}</dd>",
        f"<dt>Generated</dt><dd>{escape(_when(generated, tz))} ({escape(t.timezone)})</dd>",
        f"<dt>Rows</dt><dd>{len(tickets)} tickets, {len(transfers)} transfers, "
        f"{len(conferences)} conferences</dd></dl></header>",
        "<section id=\"summary\"><h2>Summary per platform</h2>",
        _summary_table(groups, t),
        "<p class=\"muted\">Offered: tickets that joined a queue, short abandons left out. "
        "Hand-off completeness: on tickets received from another platform, the share of "
        "the hand-off fields (ticket, callback, category, division, location, safety note) "
        "they carried, and the share that carried all of them.</p></section>",
        "<section id=\"transfers\"><h2>Transfers per direction</h2>",
        _transfer_table(groups), "</section>",
        "<section id=\"categories\"><h2>Tickets by category</h2>",
        _category_table(tickets), "</section>",
        "<section id=\"charts\"><h2>Charts</h2>", *(_figure(c) for c in drawn), "</section>",
        "<footer class=\"muted\"><p>Figures: telephony/archive/measures.py over the ticket "
        "archive (PostgreSQL).</p></footer></body></html>\n",
    ])


def summary_lines(groups: Sequence[Mapping[str, Any]], t: Thresholds) -> list[str]:
    """One line per platform (figures grouped by platform), for a terminal."""
    lines = []
    for g in groups:
        a = g["answer"]
        attempted = sum(x["attempted"] for x in g["transfers"].values())
        succeeded = sum(x["succeeded"] for x in g["transfers"].values())
        met = a["connection_target_met"]
        verdict = "" if met is None else (" (meets target)" if met else " (below target)")
        lines.append(f"{g['group'].get('platform', '')}: answered {a['answered']}/"
                     f"{a['offered']}, within {t.answer_s:g} s {_pct(a['answer_service_level'])},"
                     f" connection rate {_pct(a['connection_rate'])}{verdict}, transfers "
                     f"{attempted} ({succeeded} succeeded)")
    return lines or ["no tickets in this window"]
