"""Prompt table and build-time rendering (real espeak-ng + sox on two prompts)."""

from __future__ import annotations

import json
import wave

from ivr.knowledge import load_knowledge
from ivr.numbers import MAX_SPOKEN, number_prompts
from ivr.prompts import MANIFEST, PROMPTS, all_prompts, render_prompts

TWO = {k: PROMPTS[k] for k in ("emergency_escape", "num_5")}


def test_real_render_is_8k_mono_16bit(tmp_path):
    rendered = render_prompts(TWO, tmp_path)
    assert sorted(rendered) == sorted(TWO)
    for name in TWO:
        with wave.open(str(tmp_path / f"{name}.wav")) as wav:
            assert wav.getframerate() == 8000
            assert wav.getnchannels() == 1
            assert wav.getsampwidth() == 2
            assert wav.getnframes() > 800  # at least 0.1 s of speech
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert set(manifest) == set(TWO)


def test_unchanged_text_is_skipped_and_changed_text_rerendered(tmp_path):
    calls: list[str] = []

    def fake_render(text, out):
        calls.append(text)
        out.write_bytes(text.encode())

    render_prompts(TWO, tmp_path, fake_render)
    assert len(calls) == 2
    assert render_prompts(TWO, tmp_path, fake_render) == []
    changed = {**TWO, "num_5": "五五"}
    assert render_prompts(changed, tmp_path, fake_render) == ["num_5"]
    (tmp_path / "emergency_escape.wav").unlink()  # a missing file is rendered again
    assert render_prompts(changed, tmp_path, fake_render) == ["emergency_escape"]
    assert not list(tmp_path.glob("*.tmp.wav"))


def test_table_covers_numbers_and_knowledge_base():
    table = all_prompts()
    for n in range(MAX_SPOKEN + 5):
        assert set(number_prompts(n)) <= set(table)
    for faq in load_knowledge().entries:
        assert faq.question in table[faq.question_prompt]
        assert table[faq.answer_prompt] == faq.answer
    assert all(name.replace("_", "").isalnum() and name.isascii() for name in table)
    # espeak reads Arabic numerals as quantities: hotline numbers are spelled out
    assert not any(ch.isdigit() and ch.isascii() for text in table.values() for ch in text)
