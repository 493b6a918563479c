"""Speak a small count in Mandarin from digit prompts (num_0 .. num_10, num_many).

Asterisk ships no Mandarin number files on Debian, so the IVR composes numbers
from its own generated prompts: 23 -> 二 十 三.
"""

from __future__ import annotations

MAX_SPOKEN = 99


def number_prompts(n: int) -> list[str]:
    """Prompt names that say n; above 99 it says num_many ("很多")."""
    if n < 0:
        n = 0
    if n > MAX_SPOKEN:
        return ["num_many"]
    if n <= 10:
        return [f"num_{n}"]
    tens, ones = divmod(n, 10)
    out = [] if tens == 1 else [f"num_{tens}"]
    out.append("num_10")
    if ones:
        out.append(f"num_{ones}")
    return out


def minutes_of(seconds: int) -> int:
    """Whole minutes for an announcement, never 0 (a caller hears at least 1 minute)."""
    return max(1, -(-int(seconds) // 60))
