"""The classifier's answer: which platform, who else, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Decision:
    primary: str  # platform that should take the call
    also: tuple[str, ...]  # desks to notify or pull in
    three_party: bool  # unclear or conflicting: hold a three-party call
    emergency: bool  # danger to life, property or public safety right now
    confidence: float  # 0..1
    reason: str  # names the rule (category) and the keywords that fired
    category: str | None  # catalogue code, None when nothing matched
    linkage: str = "single"  # linkage kind of the deciding entry
    caution: bool = False  # a danger cue was seen but set aside (question, worry, story)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["also"] = list(self.also)
        return out
