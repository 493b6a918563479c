"""The surge-mode knowledge base (一问一答): small, editable YAML shipped in ivr/data/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).parent / "data" / "knowledge.yaml"
MAX_PER_CATEGORY = 4


@dataclass(frozen=True)
class Faq:
    id: str
    category: str
    key: str
    question: str
    answer: str

    @property
    def question_prompt(self) -> str:
        return f"kb_{self.id}_q"

    @property
    def answer_prompt(self) -> str:
        return f"kb_{self.id}_a"


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[Faq, ...]

    def for_category(self, category: str) -> tuple[Faq, ...]:
        return tuple(e for e in self.entries if e.category == category)[:MAX_PER_CATEGORY]


def parse_knowledge(doc: dict) -> KnowledgeBase:
    """Validate the YAML document: unique ids, one digit key per entry, unique per category."""
    entries = []
    seen_ids: set[str] = set()
    seen_keys: set[tuple[str, str]] = set()
    for raw in doc.get("entries", []):
        faq = Faq(
            id=str(raw["id"]),
            category=str(raw["category"]),
            key=str(raw["key"]),
            question=str(raw["question"]).strip(),
            answer=str(raw["answer"]).strip(),
        )
        if not faq.id.replace("_", "").isalnum() or not faq.id.isascii():
            raise ValueError(f"knowledge id must be ascii letters/digits/_: {faq.id!r}")
        if faq.key not in "123456789" or len(faq.key) != 1:
            raise ValueError(f"knowledge key must be one digit 1-9: {faq.id}")
        if faq.id in seen_ids or (faq.category, faq.key) in seen_keys:
            raise ValueError(f"duplicate knowledge id or key: {faq.id}")
        if not faq.question or not faq.answer:
            raise ValueError(f"knowledge entry without text: {faq.id}")
        seen_ids.add(faq.id)
        seen_keys.add((faq.category, faq.key))
        entries.append(faq)
    return KnowledgeBase(tuple(entries))


def load_knowledge(path: str | Path = DEFAULT_PATH) -> KnowledgeBase:
    with open(path, encoding="utf-8") as fh:
        return parse_knowledge(yaml.safe_load(fh) or {})
