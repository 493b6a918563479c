"""The report's charts: matplotlib figures saved as SVG text, ready to inline in HTML.

Each chart function takes figures already computed (telephony.archive.measures)
or plain lists of durations, and returns a `Chart` whose `svg` is a complete
<svg> element: no XML prolog, glyphs drawn as paths (`svg.fonttype` "path", so
Chinese labels look the same in any browser, with no font of its own), element
ids prefixed with the chart's name so that several charts can share one page.
A chart with nothing to show still is an <svg>, saying "no data in this window".

Figures are built with the object API (`matplotlib.figure.Figure`, no pyplot
state), so rendering may run in a worker thread. The artists that carry data
get ids `<chart>-data…` (bars, boxes, points) and `<chart>-threshold` (target
lines), which the tests look for.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from html import escape
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.typing import RcKeyType

CHARTS = ("answer_wait", "sla_by_hour", "transfer_setup", "three_party", "diversions")
NO_DATA = "no data in this window"
CJK_FONT = "WenQuanYi Micro Hei"  # fonts-wqy-microhei, installed by scripts/install-deps.sh
# How a three-party call ended (measures.three_party_figures "ends"), in chart order.
THREE_PARTY_ENDS = {"agreed": "agreed\n协商一致",
                    "first_receiver": "first receiver keeps\n首接负责",
                    "police_first": "police first\n公安先行",
                    "not_recorded": "not recorded\n未记录"}
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f")
TARGET_COLOUR = "#c0392b"
_MAX_TICK_LABELS = 24


@dataclass(frozen=True)
class Chart:
    name: str  # one of CHARTS: the figure's data-chart
    title: str
    caption: str
    svg: str
    empty: bool  # nothing in the window: the svg says so


@cache
def _sans_serif() -> tuple[str, ...]:
    """The CJK font first when the machine has it; otherwise matplotlib's own list."""
    families = [f for f in matplotlib.rcParamsDefault["font.sans-serif"] if f != CJK_FONT]
    try:
        font_manager.findfont(font_manager.FontProperties(family=CJK_FONT),
                              fallback_to_default=False)
    except ValueError:
        return tuple(families)
    return (CJK_FONT, *families)


@contextmanager
def _style() -> Iterator[None]:
    rc: dict[RcKeyType, Any] = {
        "font.family": "sans-serif", "font.sans-serif": list(_sans_serif()), "font.size": 9,
        "svg.fonttype": "path", "svg.hashsalt": "hotline-report",
        "axes.spines.top": False, "axes.spines.right": False}
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        # Without the CJK font a Chinese label is drawn as boxes: say nothing about it.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        yield


def label(text: object, limit: int = 40) -> str:
    """Text from the archive as a matplotlib label: `$` would start mathtext."""
    s = str(text)
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return s.replace("$", r"\$")


_ID = re.compile(r'(\bid="|xlink:href="#|href="#|url\(#)')


def _svg(fig: Figure, name: str, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # no XML prolog or doctype inside HTML
    # Every chart's ids under its own prefix: one page holds five of them.
    text = _ID.sub(lambda m: f"{m.group(1)}{name}-", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1)


def _new(width: float = 7.5, height: float = 3.0) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def _empty(name: str, title: str, caption: str) -> Chart:
    with _style():
        fig, ax = _new(height=1.6)
        ax.set_axis_off()
        ax.set_title(title, loc="left")
        ax.text(0.5, 0.45, NO_DATA, ha="center", va="center", transform=ax.transAxes,
                fontsize=13, color="#666666", gid="nodata")
        return Chart(name, title, caption, _svg(fig, name, title), empty=True)


def _finish(name: str, title: str, caption: str, fig: Figure, ax: Axes) -> Chart:
    ax.set_title(title, loc="left")
    return Chart(name, title, caption, _svg(fig, name, title), empty=False)


def _tag(artists: Sequence[Any], prefix: str) -> None:
    for i, artist in enumerate(artists):
        artist.set_gid(f"{prefix}.{i}")


def _bin_width(high: float) -> float:
    for width in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if high / width <= 40:
            return width
    return math.ceil(high / 40)


def answer_wait_chart(waits: Mapping[str, Sequence[float]], answer_s: float) -> Chart:
    """Histogram of queue-join-to-answer seconds per platform, with the answer threshold."""
    name, title = "answer_wait", "Answer time (排队至接通)"
    caption = (f"Seconds from joining the queue to an agent's answer, answered tickets; "
               f"the dashed line is the {answer_s:g} s threshold.")
    series = {p: list(v) for p, v in sorted(waits.items()) if v}
    if not series:
        return _empty(name, title, caption)
    high = max(max(max(v) for v in series.values()), answer_s * 1.5)
    width = _bin_width(high)
    bins = [i * width for i in range(math.ceil(high / width) + 1)]
    with _style():
        fig, ax = _new()
        _, _, patches = ax.hist(list(series.values()), bins=bins,
                                label=[label(p) for p in series],
                                color=[COLOURS[i % len(COLOURS)] for i in range(len(series))])
        containers = cast(list[BarContainer], patches if len(series) > 1 else [patches])
        for i, container in enumerate(containers):
            _tag(list(container), f"data.{i}")
        ax.axvline(answer_s, linestyle="--", color=TARGET_COLOUR, gid="threshold",
                   label=f"{answer_s:g} s")
        ax.set_xlabel("seconds")
        ax.set_ylabel("tickets")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, bins[-1])
        ax.legend(frameon=False)
        return _finish(name, title, caption, fig, ax)


def _hour_label(hour: str, one_day: bool) -> str:
    return hour[11:16] if one_day else f"{hour[5:10]} {hour[11:13]}h"


def sla_by_hour_chart(groups: Sequence[Mapping[str, Any]], target: float,
                      answer_s: float) -> Chart:
    """Answer service level per hour (bars, one series per platform), connection rate
    (dots) and the connection target: `groups` from figures(group_by=("platform", "hour"))."""
    name, title = "sla_by_hour", "SLA compliance by hour (按小时服务水平)"
    caption = (f"Bars: answered within {answer_s:g} s / offered, per hour; dots: connection "
               f"rate (answered / offered); dashed line: the {target:.0%} target.")
    rows = [(g["group"].get("platform", ""), g["group"]["hour"], g["answer"]) for g in groups
            if g["answer"]["answer_service_level"] is not None]
    if not rows:
        return _empty(name, title, caption)
    hours = sorted({h for _, h, _ in rows})
    platforms = sorted({p for p, _, _ in rows})
    at = {h: i for i, h in enumerate(hours)}
    width = 0.8 / len(platforms)
    with _style():
        fig, ax = _new()
        for i, platform in enumerate(platforms):
            mine = [(at[h], a) for p, h, a in rows if p == platform]
            xs = [x - 0.4 + width * (i + 0.5) for x, _ in mine]
            bars = ax.bar(xs, [a["answer_service_level"] for _, a in mine], width=width * 0.95,
                          label=label(platform), color=COLOURS[i % len(COLOURS)])
            _tag(list(bars), f"data.{i}")
            if len(rows) <= _MAX_TICK_LABELS:  # a 0 % bar is otherwise invisible
                ax.bar_label(bars, labels=[f"{a['answer_service_level']:.0%}" for _, a in mine],
                             padding=2, fontsize=7)
            dots = ax.plot(xs, [a["connection_rate"] for _, a in mine], "o", markersize=4,
                           color="#222222", label="connection rate" if i == 0 else None)
            _tag(dots, f"data.rate.{i}")
        ax.axhline(target, linestyle="--", color=TARGET_COLOUR, gid="threshold",
                   label=f"target {target:.0%}")
        one_day = len({h[:10] for h in hours}) == 1
        step = max(1, math.ceil(len(hours) / _MAX_TICK_LABELS))
        ax.set_xticks(range(0, len(hours), step),
                      [_hour_label(h, one_day) for h in hours[::step]],
                      rotation=45 if len(hours) > 8 else 0)
        ax.set_xlim(-0.6, max(len(hours), 8) - 0.4)  # a few hours still look like hours
        ax.set_ylim(0, 1.1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("share of offered")
        fig.legend(frameon=False, loc="outside lower center", ncols=len(platforms) + 2)
        return _finish(name, title, caption, fig, ax)


def transfer_setup_chart(setups: Mapping[str, Sequence[float]],
                         attempts: Mapping[str, int]) -> Chart:
    """Box plot of transfer setup seconds (initiation -> the receiving answer) per direction,
    each transfer drawn as a point over its box."""
    name, title = "transfer_setup", "Transfer setup time per direction (转接建立时长)"
    caption = ("Seconds from a transfer's initiation to the receiving centre's answer, per "
               "direction; n = transfers answered / attempted.")
    series = {d: list(v) for d, v in sorted(setups.items()) if v}
    if not series:
        return _empty(name, title, caption)
    with _style():
        fig, ax = _new(height=max(1.6, 0.9 + 0.55 * len(series)))
        ticks = [f"{label(d)}\nn={len(v)}/{attempts.get(d, len(v))}" for d, v in series.items()]
        box = ax.boxplot(list(series.values()), orientation="horizontal", tick_labels=ticks,
                         widths=0.5, showfliers=False, patch_artist=True,
                         boxprops={"facecolor": "#dbe9f6"}, medianprops={"color": "#1f3b5c"})
        _tag(box["boxes"], "data.box")
        for i, values in enumerate(series.values()):
            # Evenly spread in a band around the box's axis: deterministic, no random jitter.
            ys = [i + 1 + ((j % 9) - 4) * 0.04 for j in range(len(values))]
            _tag(ax.plot(values, ys, "o", markersize=3, alpha=0.6, color=COLOURS[0]),
                 f"data.points.{i}")
        ax.set_xlabel("seconds")
        ax.set_xlim(left=0)
        return _finish(name, title, caption, fig, ax)


def three_party_chart(ends: Mapping[str, Mapping[str, int]]) -> Chart:
    """How three-party calls ended, per platform: `ends` maps a platform to
    three_party_figures(...)["ends"]."""
    name, title = "three_party", "Three-party call outcomes (三方通话结果)"
    caption = ("Three-party calls by how they ended: agreed (协商一致), the first receiver "
               "keeps the ticket (首接负责), police dispatch first (公安先行), or no "
               "negotiation result recorded.")
    platforms = sorted(p for p, counts in ends.items() if sum(counts.values()))
    if not platforms:
        return _empty(name, title, caption)
    width = 0.8 / len(platforms)
    with _style():
        fig, ax = _new()
        for i, platform in enumerate(platforms):
            xs = [k - 0.4 + width * (i + 0.5) for k in range(len(THREE_PARTY_ENDS))]
            bars = ax.bar(xs, [ends[platform].get(end, 0) for end in THREE_PARTY_ENDS],
                          width=width * 0.95, label=label(platform),
                          color=COLOURS[i % len(COLOURS)])
            _tag(list(bars), f"data.{i}")
            ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_xticks(range(len(THREE_PARTY_ENDS)), list(THREE_PARTY_ENDS.values()))
        ax.set_ylabel("calls")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(y=0.15)
        ax.legend(frameon=False)
        return _finish(name, title, caption, fig, ax)


def diversions_chart(received: Mapping[str, int], sent: Mapping[str, int]) -> Chart:
    """Per direction: tickets received from the other platform vs transfers completed to it
    (measures.diversion_figures)."""
    name, title = "diversions", "Diversion volumes per direction (平台间分流量)"
    caption = ("Per direction (from->to): tickets the receiving platform took with another "
               "origin, and transfers the sending platform completed.")
    directions = sorted(set(received) | set(sent))
    if not directions:
        return _empty(name, title, caption)
    with _style():
        fig, ax = _new()
        xs = range(len(directions))
        for i, (what, counts) in enumerate((("received", received), ("sent", sent))):
            bars = ax.bar([x - 0.2 + 0.4 * i for x in xs],
                          [counts.get(d, 0) for d in directions], width=0.38, label=what,
                          color=COLOURS[i])
            _tag(list(bars), f"data.{what}")
            ax.bar_label(bars, padding=2, fontsize=8)
        ax.set_xticks(list(xs), [label(d) for d in directions])
        spare = max(3 - len(directions), 0) / 2  # one or two directions: bars not too wide
        ax.set_xlim(-0.6 - spare, len(directions) - 0.4 + spare)
        ax.set_ylabel("tickets")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(y=0.15)
        ax.legend(frameon=False)
        return _finish(name, title, caption, fig, ax)
