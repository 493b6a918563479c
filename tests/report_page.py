"""The `hotline report` page read back with html.parser (stdlib): its charts (the <svg>
in each <figure data-chart=…>, and whether data was drawn in it), the summary table's
raw values, the tags outside the charts and the visible text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

from telephony.report.charts import CHARTS, NO_DATA

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


class Page(HTMLParser):
    """What the tests read off the page: charts, summary rows, tags, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []  # every start tag outside the charts' svg
        self.charts: dict[str, dict[str, Any]] = {}
        self.summary: dict[str, dict[str, Any]] = {}
        self.texts: list[str] = []
        self._chart: dict[str, Any] | None = None
        self._svg_depth = 0
        self._groups: list[str] = []
        self._row: dict[str, Any] | None = None
        self._caption = False
        self._table: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, dict(attrs), leaf=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, dict(attrs), leaf=True)

    def _element(self, tag: str, a: dict[str, str | None], leaf: bool) -> None:
        if tag == "figure" and a.get("data-chart"):
            name = str(a["data-chart"])
            self._chart = self.charts[name] = {
                "name": name, "empty": a.get("data-empty"), "svgs": 0, "drawn": 0,
                "threshold": False, "comments": [], "caption": "", "ids": []}
        chart = self._chart
        if chart is not None and (self._svg_depth or tag == "svg"):
            self._svg_element(chart, tag, a, leaf)
            return
        self.tags.append(tag)
        if tag == "table":
            self._table = a.get("class")
        elif tag == "figcaption":
            self._caption = True
        elif tag == "tr" and a.get("data-platform") is not None and self._table == "summary":
            self._row = self.summary.setdefault(str(a["data-platform"]), {})
        elif tag == "td" and self._row is not None and a.get("data-field"):
            self._row[str(a["data-field"])] = json.loads(str(a["data-value"]))

    def _svg_element(self, chart: dict[str, Any], tag: str, a: dict[str, str | None],
                     leaf: bool) -> None:
        chart["svgs"] += tag == "svg"
        if a.get("id"):
            chart["ids"].append(a["id"])
        if not leaf:
            self._svg_depth += 1
            if tag == "g":
                self._groups.append(a.get("id") or "")
        within = [g.removeprefix(chart["name"] + "-") for g in self._groups]
        chart["threshold"] |= any(g.startswith("threshold") for g in within)
        if any(g.startswith("data") for g in within) and _drawn(tag, a):
            chart["drawn"] += 1

    def handle_endtag(self, tag: str) -> None:
        if self._svg_depth:
            self._svg_depth -= 1
            if tag == "g" and self._groups:
                self._groups.pop()
            return
        if tag == "figure":
            self._chart = None
        elif tag == "figcaption":
            self._caption = False
        elif tag == "tr":
            self._row = None

    def handle_comment(self, data: str) -> None:
        if self._chart is not None and self._svg_depth:
            self._chart["comments"].append(data.strip())

    def handle_data(self, data: str) -> None:
        if self._svg_depth:
            return
        self.texts.append(data)
        if self._caption and self._chart is not None:
            self._chart["caption"] += data

    @property
    def text(self) -> str:
        return " ".join(self.texts)


def _drawn(tag: str, a: dict[str, str | None]) -> bool:
    """A mark with an area or a length: a path whose points span some width or height,
    or a marker placed with <use>."""
    if tag == "use":
        return True
    if tag != "path" or not a.get("d"):
        return False
    numbers = [float(n) for n in _NUMBER.findall(str(a["d"]))]
    xs, ys = numbers[::2], numbers[1::2]
    return bool(xs and ys) and (max(xs) - min(xs) > 0 or max(ys) - min(ys) > 0)


def check_charts(page: Page, *, empty: bool) -> None:
    """Every chart is on the page, in order, as one inline <svg> with a caption: with
    data drawn in it (bars, boxes, points: not only axes), or, for an empty window,
    saying "no data in this window" in the svg and the caption instead."""
    assert list(page.charts) == list(CHARTS)
    for name, chart in page.charts.items():
        assert chart["svgs"] == 1, name
        assert chart["empty"] == str(empty).lower(), name
        assert chart["caption"].strip(), name
        says_so = any(NO_DATA in c for c in chart["comments"])
        if empty:
            assert chart["drawn"] == 0 and says_so and NO_DATA in chart["caption"], name
        else:
            assert chart["drawn"] >= 2 and not says_so, name
