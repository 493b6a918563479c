"""The prompt table (name -> Mandarin text) and its build-time renderer.

`python -m ivr.prompts OUT_DIR` renders every prompt with espeak-ng (voice cmn)
and sox into 8 kHz mono 16-bit WAV, the format Asterisk plays without
transcoding cost. Asterisk finds them as `hotline/<name>`, so OUT_DIR is
`<sounds dir>/hotline`. A manifest of text hashes skips unchanged prompts.
Numbers are written as Chinese characters so espeak reads 一二三四五, not
"twelve thousand...".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ivr.knowledge import KnowledgeBase, load_knowledge

VOICE = "cmn"
SPEED_WPM = 190  # a little above espeak's 175: menus stay short to the ear
MANIFEST = "manifest.json"

PROMPTS: dict[str, str] = {
    # 12345
    "greeting_12345": "您好，这里是一二三四五政务服务便民热线。",
    "emergency_escape": "如遇生命危险，请按零。",
    "menu_categories": (
        "政策咨询请按一，投诉举报请按二，水电气暖报修请按三，"
        "市政设施与公共服务请按四，意见建议请按五。"
    ),
    "emergency_which": "正在为您转接一一零。火警请按一，医疗急救请按二。",
    "invalid_choice": "您的输入有误，请重新选择。",
    "queue_position_before": "您前面还有",
    "queue_position_after": "位来电。",
    "queue_wait_before": "预计等待",
    "queue_wait_after": "分钟，请稍候。",
    "surge_offer": (
        "当前来电较多，等待时间较长。自助查询常见问题请按一，登记回电请按二，继续等待请按九。"
    ),
    "kb_intro": "常见问题如下。",
    "faq_after": "问题已解决请按一，转人工服务请按其他键或稍候。",
    "callback_confirm": "我们将回拨您当前的来电号码，确认请按一，使用其他号码请按二。",
    "callback_enter_number": "请输入回电号码，以井号键结束。",
    "invalid_number": "号码有误，请重新输入。",
    "callback_recorded": "已为您登记回电，工作人员会尽快与您联系。",
    "goodbye": "感谢您的来电，再见。",
    # 110
    "greeting_110": "这里是一一零报警服务台。",
    # Short on purpose: a caller who presses nothing reaches police when it ends.
    "menu_110": "报警请稍候。交通事故请按二，非紧急事项请按三。",
    "menu_110_no_traffic": "报警请稍候。非紧急事项请按三。",
    "police_back": "需要报警请按零。",
    "divert_offer": (
        "您反映的事项由一二三四五政务服务便民热线办理，转接请按一，继续等待一一零请按二。"
    ),
    "divert_connecting": "正在为您转接一二三四五热线，请稍候。",
    # played by the dialplan itself (asterisk-config/extensions.conf.tmpl)
    "queue_still_waiting": "座席仍然繁忙，请继续等待，我们会尽快为您服务。",
    "xfer_failed": "转接未能接通，正在为您接回。",
    "xfer_returned": "正在为您优先接通座席，请稍候。",
    # numbers for announcements (see ivr/numbers.py)
    **{f"num_{n}": t for n, t in enumerate("零一二三四五六七八九十")},
    "num_many": "很多",
}


def all_prompts(kb: KnowledgeBase | None = None) -> dict[str, str]:
    """PROMPTS plus two per knowledge-base entry (question with its key, answer)."""
    kb = kb if kb is not None else load_knowledge()
    table = dict(PROMPTS)
    digits = "零一二三四五六七八九"
    for faq in kb.entries:
        table[faq.question_prompt] = f"{faq.question}，请按{digits[int(faq.key)]}。"
        table[faq.answer_prompt] = faq.answer
    return table


def text_hash(text: str) -> str:
    return hashlib.sha256(f"{VOICE}\0{SPEED_WPM}\0{text}".encode()).hexdigest()[:16]


def espeak_render(text: str, out: Path) -> None:
    """espeak-ng -> temp wav -> sox to 8 kHz mono 16-bit."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        espeak = ["espeak-ng", "-v", VOICE, "-s", str(SPEED_WPM), text, "-w", str(raw)]
        subprocess.run(espeak, check=True, timeout=60)
        subprocess.run(
            ["sox", "-V1", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)],
            check=True,
            timeout=60,
        )


def render_prompts(
    table: Mapping[str, str],
    out_dir: str | Path,
    render: Callable[[str, Path], None] = espeak_render,
) -> list[str]:
    """Render what changed; returns the names rendered. The manifest is written last."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    try:
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    new: dict[str, str] = {}
    rendered = []
    for name, text in sorted(table.items()):
        digest = text_hash(text)
        wav = out / f"{name}.wav"
        if old.get(name) != digest or not wav.exists():
            tmp = wav.with_suffix(".tmp.wav")
            render(text, tmp)
            tmp.replace(wav)  # never leave a half-written prompt under its real name
            rendered.append(name)
        new[name] = digest
    manifest_path.write_text(json.dumps(new, indent=1, sort_keys=True), encoding="utf-8")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.prompts")
    parser.add_argument("out_dir", help="e.g. <asterisk sounds>/hotline")
    args = parser.parse_args(argv)
    rendered = render_prompts(all_prompts(), args.out_dir)
    print(f"{len(rendered)} prompt(s) rendered into {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
