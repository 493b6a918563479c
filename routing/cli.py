"""`hotline route classify|eval`: the classifier from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from routing.catalogue import DEFAULT_PATH, CatalogueError, load_catalogue
from routing.classifier import Classifier
from routing.evaluation import LabelError, evaluate, format_report, parse_labelled
from routing.policy import decide_action


def register(subparsers: argparse._SubParsersAction) -> None:
    route = subparsers.add_parser("route", help="routing: classify text, evaluate the classifier")
    sub = route.add_subparsers(dest="route_command", required=True)

    classify = sub.add_parser("classify", help="stdin lines -> one JSON decision per line")
    classify.add_argument("--catalogue", type=Path, default=DEFAULT_PATH)
    classify.add_argument("--receiving", choices=["12345", "110"],
                          help="also print the policy action for this receiving platform")
    classify.add_argument("--rules-only", action="store_true",
                          help="catalogue rules without the n-gram model")
    classify.set_defaults(func=run_classify)

    ev = sub.add_parser("eval", help="score a labelled TSV (text<TAB>allowed|platforms)")
    ev.add_argument("file", type=Path)
    ev.add_argument("--catalogue", type=Path, default=DEFAULT_PATH)
    ev.add_argument("--rules-only", action="store_true",
                    help="catalogue rules without the n-gram model")
    ev.set_defaults(func=run_eval)


def _classifier(path: Path, rules_only: bool = False) -> Classifier | None:
    try:
        return Classifier(load_catalogue(path), learned=not rules_only)
    except CatalogueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_classify(args: argparse.Namespace) -> int:
    classifier = _classifier(args.catalogue, args.rules_only)
    if classifier is None:
        return 2
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        decision = classifier.classify(text)
        out: dict[str, object] = {"text": text, **decision.to_dict()}
        if args.receiving:
            out["action"] = decide_action(decision, args.receiving).to_dict()
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    try:
        with args.file.open(encoding="utf-8") as fh:
            items = parse_labelled(fh, source=str(args.file))
    except (OSError, LabelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classifier = _classifier(args.catalogue, args.rules_only)
    if classifier is None:
        return 2
    report = evaluate(classifier.classify, items)
    print(format_report(report))
    # Any emergency left in a 12345 queue fails the run (the hard quality bar).
    return 1 if report.emergencies_to_12345 else 0
