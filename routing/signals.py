"""Lexical cues that change what a keyword means: negation, time, hypotheticals.

All pure functions over jieba tokens of one clause. The cue words are added to
the segmenter's dictionary (see `CUE_WORDS`) so they come out as whole tokens.
"""

from __future__ import annotations

import re
from enum import Enum

# A clause ends at punctuation or whitespace; ASR text often has neither, so the
# negation window below is also bounded by contrast words.
_CLAUSE_SPLIT = re.compile(r"[，。！？；、,.!?;…\s]+")

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NEGATORS = _words("""
    没有 没 不是 并未 未 并没有 无 并非 没什么 不存在 没人 没看到 没看见 没见 不像
    没发现 也没 都没 不会 没出现 排除 差点 差一点 险些
    无人 暂无 暂未 尚未 尚无 均无 均未 并无 从未 未见 没有人 无人员 未造成 没造成 毫无 不曾
""")
# Tokens that end a negation's scope: "不是打架，而是有人拿刀" negates only 打架.
SCOPE_BREAKERS = _words("但是 可是 不过 就是 而是 只是 结果 但 可")
NEGATION_WINDOW = 3  # tokens looked back from a keyword

PAST_MARKERS = _words("""
    上个月 上月 昨天 前天 去年 前年 上周 上星期 上礼拜 上个礼拜 上个星期 上周末 两年前
    一年前 前几天 之前 以前 当时 那时候 早就 几天前 上次 前段时间 前阵子 年前 过去
    几个月前 半年前 那次 昨晚 前晚 上半年 早些时候 已经灭了 已经扑灭 已经处理 处理完了
    后来 曾经
    昨日 前日 日前 此前 昨夜 前夜 昨儿 已就医 已出院 已经出院 已痊愈 事后
""")
PRESENT_MARKERS = _words("""
    正在 现在 刚刚 刚才 马上 还在 此刻 眼下 快要 就要 赶紧 快来 救命 目前 这会儿 正
    一直在 又 又在 立刻 快点 快 赶快
    仍在 仍然 当前 现场
""")
# A cry for help. With no rule matched, present tense alone (正在装修, 到现在还没修)
# is no danger; these words, or a live harm cue, are what make the police desk lead.
CRY_FOR_HELP = _words("救命 快来 快救 救救 求救 来人啊 快来人")
# "到现在还没修": how long a complaint has waited, not a danger happening now.
DURATION_PREFIXES = _words("到 直到 一直到 至")
# Characters that often signal harm. Used only when no emergency rule fired: then the
# police desk, not 12345, leads the three-party call (unclear + possibly dangerous).
DANGER_ROOTS = frozenset("血火烧刀枪砍捅杀跳淹溺塌炸爆撞救困砸抢拽绑晕昏疼痛烫摔")


# Two-character harm cues by concept, for roots too ambiguous alone (伤心, 血压, 银行卡).
HARM_WORDS = _words("""
    受伤 伤口 口子 咬了 咬伤 紫了 发紫 噎住 憋得 喘不 不醒 不睁眼 站不住 动不了 没动静
    黑烟 冒烟 浓烟 噼里啪啦 焦味 呛人
    进水了 冲垮 决口
    翻了 侧翻 轧了 压住 卡住 被困
    按在 拖走 掐住 闯进 踹门
""")
# Everyday words that contain a harm root (困难, 打火, 跳闸): removed before the scan.
HARM_EXEMPT = ("困难", "困扰", "打火", "火车", "火锅", "上火", "火腿", "跳闸", "跳舞", "跳绳",
               "血压", "血糖", "砸墙", "抢购", "抢票", "撞衫", "烧烤", "燃烧", "心疼", "头疼")


def harm_cue(text: str, roots_in: str | None = None) -> str | None:
    """The first harm word in text, or harm character in roots_in (default: text)."""
    roots_in = text if roots_in is None else roots_in
    for word in HARM_EXEMPT:
        text, roots_in = text.replace(word, ""), roots_in.replace(word, "")
    # Deterministic (HARM_WORDS is a set): the earliest cue in the text, longest first.
    found = [(text.find(word), -len(word), word) for word in HARM_WORDS if word in text]
    if found:
        return min(found)[2]
    return next((ch for ch in roots_in if ch in DANGER_ROOTS), None)


# An animal hurt, stuck or in water, with no person in the text: a 12345 or animal-rescue
# matter, not a medical emergency ("流浪狗腿受伤了", "猫身上好几个口子").
ANIMALS = ("猫", "狗", "犬", "宠物", "鸟", "鸽子", "鱼", "兔子", "仓鼠", "鹦鹉", "泰迪", "金毛",
           "柯基")
PEOPLE = ("人", "孩子", "小孩", "宝宝", "婴儿", "老人", "爸", "妈", "爷", "奶", "他", "她", "我",
          "儿子", "女儿", "老公", "老婆", "丈夫", "妻子", "男", "女", "司机", "学生", "叔", "姨",
          "哥", "姐", "弟", "妹", "自己", "邻居", "工人", "伯")
# Words that name the caller's side, not a person in the scene; and an animal as agent
# (被狗咬: a person is hurt).
_NOT_PEOPLE = ("我家", "我们家", "来电人", "店里", "主人", "邻居家", "别人家", "他们", "人家")
_ANIMAL_AGENT = re.compile("被[^，。]{0,3}(" + "|".join(ANIMALS) + ")")


def animal_only(text: str) -> bool:
    """True when the text is about an animal and names no person."""
    if not any(a in text for a in ANIMALS):
        return False
    agent = _ANIMAL_AGENT.search(text)  # 被狗咬了: a person hurt, unless a pet came first
    if agent and not any(a in text[:agent.start()] for a in ANIMALS):
        return False
    for word in _NOT_PEOPLE:
        text = text.replace(word, "")
    return not any(p in text for p in PEOPLE)


def has_danger_root(text: str) -> bool:
    return harm_cue(text) is not None


# "如果着火了该打什么电话" asks about a danger; it does not report one. Both a
# conditional and a question cue are needed, so "如果你们不来他就要跳了" stays urgent.
CONDITIONALS = _words("如果 万一 假如 要是 假设 一旦")
QUESTION_CUES = _words("""
    怎么 应该 咨询 请问 哪个电话 什么电话 如何 吗 预防 注意 能不能 可不可以 该不该
""")  # substrings

# Frames: wording that talks *about* a danger without reporting one happening now.
# Worry about what could happen ("怕有小孩掉下去", "容易划伤人"): that clause only.
WORRY_CUES = _words("怕 担心 容易 以免 免得 生怕 隐患 会不会 小心")
# A habit is a nuisance, not an acute danger ("天天都是烟味"): the clause reads as past,
# so the hit goes to its follow-up (when_past) entry, not to the emergency desk.
HABITUAL_MARKERS = _words("天天 每天 经常 老是 总是 常常 每晚 整天 三天两头 一到晚上")
# Fiction, drills and news reports frame the whole text.
STORY_FRAMES = ("电视剧", "电影", "新闻", "小说", "视频里", "游戏里", "演习", "演练", "动画片")
# A consultation with no present-tense word is a question, not a report.
CONSULT_CUES = ("想问", "想咨询", "咨询一下", "请问", "想了解", "问一下", "问问")
# Sudden or worsening: a question with these words reports a danger (see `_acute`).
ACUTE_CUES = ("突然", "很重", "很浓", "特别浓", "特别重", "越来越")
# "防溺水", "防小偷": prevention, so the keyword after it is no event.
PREVENTION_PREFIXES = ("防", "预防", "防止", "防范")

CUE_WORDS = (NEGATORS | CRY_FOR_HELP | SCOPE_BREAKERS | PAST_MARKERS | PRESENT_MARKERS
             | CONDITIONALS | WORRY_CUES | HABITUAL_MARKERS)


class Tense(Enum):
    UNSPECIFIED = "unspecified"  # treated as happening now: safety first
    PAST = "past"
    PRESENT = "present"


def split_clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_SPLIT.split(text) if c]


def clause_tense(tokens: list[str], inherited: Tense) -> Tense:
    """Present beats past within a clause ("昨天那人现在又来了"); no marker inherits.

    A habit (天天, 经常) reads as past for that clause only: it is not inherited.
    """
    present = any(t in PRESENT_MARKERS and _present_use(tokens, i)
                  for i, t in enumerate(tokens))
    if present:
        return Tense.PRESENT
    if any(t in PAST_MARKERS or t in HABITUAL_MARKERS for t in tokens):
        return Tense.PAST
    return inherited


def _present_use(tokens: list[str], i: int) -> bool:
    """"又黑又臭" is a description, not "again"; "到现在还没修" is a wait, not now."""
    tok = tokens[i]
    if tok == "又" and tokens.count("又") > 1:
        return False
    return not (tok == "现在" and i > 0 and tokens[i - 1] in DURATION_PREFIXES)


def clause_is_worry(tokens: list[str]) -> bool:
    """"怕有小孩掉下去": a feared danger, unless the clause also says it is happening now."""
    return (any(t in WORRY_CUES for t in tokens)
            and not any(t in PRESENT_MARKERS for t in tokens))


def text_frame(text: str, tokens: list[str]) -> str | None:
    """'story' (fiction, drill, news) or 'consultation', else None (a report)."""
    if any(t in PRESENT_MARKERS for t in tokens) and any(t in {"救命", "快来"} for t in tokens):
        return None  # a cry for help is never framed away
    if any(f in text for f in STORY_FRAMES):
        return "story"
    if (any(c in text for c in CONSULT_CUES) and not any(t in PRESENT_MARKERS for t in tokens)
            and not _acute(text, tokens)):
        return "consultation"
    return None


def _acute(text: str, tokens: list[str]) -> bool:
    """"请问我爸突然晕倒了怎么办": a sudden or worsening state, with nothing marking it
    past, is a report phrased as a question, not a consultation."""
    return (any(cue in text for cue in ACUTE_CUES)
            and not any(t in PAST_MARKERS or t in HABITUAL_MARKERS for t in tokens))


def after_prevention(text: str, start: int) -> bool:
    """True when the word at text[start:] follows 防/预防 (防溺水, 防小偷)."""
    return any(text.endswith(p, 0, start) for p in PREVENTION_PREFIXES)


def is_negated(tokens: list[str], index: int) -> bool:
    """True when a negator sits within NEGATION_WINDOW tokens before tokens[index]."""
    for j in range(index - 1, max(-1, index - 1 - NEGATION_WINDOW), -1):
        tok = tokens[j]
        if tok in SCOPE_BREAKERS:
            return False
        if tok in NEGATORS:
            return True
    return False


def is_hypothetical(text: str, tokens: list[str]) -> bool:
    has_conditional = any(t in CONDITIONALS for t in tokens)
    return has_conditional and any(cue in text for cue in QUESTION_CUES)
