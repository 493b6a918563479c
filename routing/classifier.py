"""Free-text classifier: Chinese note or transcript -> Decision.

Steps: split into clauses, segment with jieba (catalogue keywords are whole
words), look tokens up in a keyword index, run each entry's regex patterns, then
weigh hits with negation and tense. Safety first: any live danger hit decides the
call as an emergency, whatever else matched. Unclear or conflicting -> three-party.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

from routing.catalogue import EMERGENCY_PLATFORMS, Catalogue, CatalogueData, Entry
from routing.decision import Decision
from routing.ngram_model import NgramModel, Opinion
from routing.segmenter import Segmenter
from routing.signals import (
    CRY_FOR_HELP,
    CUE_WORDS,
    Tense,
    after_prevention,
    animal_only,
    clause_is_worry,
    clause_tense,
    harm_cue,
    is_hypothetical,
    is_negated,
    split_clauses,
    text_frame,
)

PATTERN_WEIGHT = 1.5
HINT_WEIGHT = 0.4
MIN_CONFIDENT_SCORE = 1.0  # below this a non-emergency match is too thin to act on
CONFLICT_RATIO = 0.75  # a rival platform this close to the top one means "unclear"
DEFAULT_PLATFORM = "12345"  # primary when nothing matched (three-party decides)
# Nothing matched but the caller sounds urgent (正在/刚才/快...) or a harm character
# (血, 火, 刀...) appears: police desk leads
# the three-party call, so an unknown emergency never waits in a 12345 queue.
URGENT_UNKNOWN_PLATFORM = "110"
ANIMAL_RESCUE = "400800"  # an animal stuck or in water goes to this entry (119)
# The n-gram model's thresholds on P(emergency desk). Escalating is cheap (110 joins a
# three-party call); missing an emergency is not, so the bar to escalate is low and the
# bar to hand a soft 110 lead back to 12345 is very low.
ESCALATE = 0.4  # a rule matched an ordinary matter
ESCALATE_UNMATCHED = 0.3  # no rule matched at all
DESK_SWITCH = 0.4  # a soft 110 lead goes to the model's desk (120, 119) above this
FRAMED_ESCALATE = 0.6  # a consultation or a question with no danger rule hit needs more
DEESCALATE = 0.05
RULE_DESK_SHARE = 0.5  # see _rule_desk
# The rules set a danger cue aside (没人受伤): the other clauses escalate only when the
# model is nearly sure ("问他家在哪他也说不清" is; "电池鼓包了" is not).
REMNANT_ESCALATE = 0.9


def keyword_weight(keyword: str) -> float:
    """Longer phrases are more specific; single characters are weak evidence."""
    if len(keyword) == 1:
        return 0.5
    return 1.0 + min(1.0, 0.25 * (len(keyword) - 2))


@dataclass(frozen=True)
class Hit:
    entry: Entry
    cue: str  # keyword, or the regex match text
    weight: float
    negated: bool
    tense: Tense
    hint: bool = False
    frame: str | None = None  # "prevention" (防溺水) or "worry" (怕有人掉下去)


@dataclass(frozen=True)
class Scan:
    """Everything the decision needs from the text."""
    hits: list[Hit]
    hypothetical: bool  # 如果...怎么办
    frame: str | None  # "story" (fiction, drill, news) or "consultation"
    urgent: bool  # a cry for help (救命, 快来) or a live harm cue
    harm_cue: str | None  # the first live harm character, for the reason
    animal: bool = False  # about an animal, no person named: no medical emergency
    # Clauses with no danger set aside in them: what the model reads when the rules
    # set a danger cue aside ("看着倒是没受伤" must not mute "问他家在哪他也说不清").
    model_text: str = ""


class Classifier:
    """Built from one catalogue snapshot; `from_catalogue` follows reloads."""

    def __init__(self, data: CatalogueData, model: NgramModel | None = None, *,
                 learned: bool = True) -> None:
        """`model` defaults to one trained on the shipped sets; learned=False: rules only."""
        self.data = data
        if learned and model is None:
            from routing.training import default_model  # reads the TSV sets once
            model = default_model(data)
        self.model = model if learned else None
        index: dict[str, list[tuple[Entry, float]]] = defaultdict(list)
        for entry in data.entries:
            words = [(kw, keyword_weight(kw)) for kw in entry.keywords]
            words += [(hint, HINT_WEIGHT) for hint in entry.hints]
            for word, weight in words:
                if all(e is not entry for e, _ in index[word]):
                    index[word].append((entry, weight))
        self._index = dict(index)
        self._longest = max(len(w) for w in self._index)
        self._patterns = [(e, p) for e in data.entries for p in e.patterns]
        self._segmenter = Segmenter([*self._index, *CUE_WORDS])

    # ------------------------------------------------------------------ matching
    def scan(self, text: str) -> Scan:
        """All keyword/pattern hits with negation, tense and frames."""
        found: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        all_tokens: list[str] = []
        harm_text: list[tuple[str, str]] = []  # live report clauses: (all, unread words)
        tense = Tense.UNSPECIFIED
        urgent = False
        kept: list[str] = []  # clauses with nothing set aside, for the model
        for clause in split_clauses(text):
            tokens = self._segmenter.cut(clause)
            all_tokens.extend(tokens)
            tense = clause_tense(tokens, tense)
            worry = clause_is_worry(tokens)
            negated = [is_negated(tokens, i) for i in range(len(tokens))]
            urgent = urgent or any(t in CRY_FOR_HELP and not negated[i]
                                   for i, t in enumerate(tokens))
            clause_hits: list[Hit] = []
            offset = 0
            for i, tok in enumerate(tokens):
                for word, at in self._words_in(tok):
                    for entry, weight in self._index[word]:
                        if (entry.code, word) not in seen:
                            seen.add((entry.code, word))
                            clause_hits.append(Hit(
                                entry, word, weight, is_negated(tokens, i), tense,
                                hint=weight == HINT_WEIGHT and word in entry.hints,
                                frame=_frame(clause, offset + at, worry)))
                offset += len(tok)
            for entry, pattern in self._patterns:
                m = pattern.search(clause)
                if m and (entry.code, m.group(0)) not in seen:
                    seen.add((entry.code, m.group(0)))
                    at = _token_at(tokens, m.start())
                    clause_hits.append(Hit(entry, m.group(0), PATTERN_WEIGHT,
                                           is_negated(tokens, at), tense,
                                           frame=_frame(clause, m.start(), worry)))
            found.extend(clause_hits)
            # Harm counts only in a live report clause: not in a worry, habit or the past,
            # not in negated words (没有着火, 无人受伤). A single harm character also does
            # not count inside a word a rule already read (烧烤 is food).
            if not worry and tense is not Tense.PAST:
                dead = {h.cue for h in clause_hits if h.negated or h.frame}
                live = "".join(t for i, t in enumerate(tokens)
                               if t not in dead and not negated[i])
                read = {h.cue for h in clause_hits}
                unread = "".join(t for i, t in enumerate(tokens)
                                 if t not in read and not negated[i])
                harm_text.append((live, unread))
            if tense is not Tense.PAST and not any(
                    h.entry.emergency and (h.negated or h.frame) for h in clause_hits):
                kept.append(clause)
        frame = text_frame(text, all_tokens)
        hypothetical = is_hypothetical(text, all_tokens)
        harm = next(filter(None, (harm_cue(live, unread) for live, unread in harm_text)), None)
        animal = animal_only(text)
        if frame is not None or hypothetical or animal:
            harm = None  # fiction, drills, news and questions carry harm words by nature
        return Scan(found, hypothetical, frame, urgent or harm is not None, harm, animal,
                    "，".join(kept))

    def _words_in(self, token: str) -> list[tuple[str, int]]:
        """The token itself if it is a keyword, else keywords inside it.

        jieba's own dictionary sometimes keeps a longer word whole (聚众赌博), which
        would hide the keyword 赌博; a scan of the token's substrings recovers it.
        """
        if token in self._index:
            return [(token, 0)]
        if len(token) < 3:
            return []
        found = []
        for size in range(min(len(token) - 1, self._longest), 1, -1):
            for start in range(len(token) - size + 1):
                piece = token[start:start + size]
                if piece in self._index:
                    found.append((piece, start))
        return found

    # ------------------------------------------------------------------ deciding
    def classify(self, text: str) -> Decision:
        scan = self.scan(text)
        hits, hypothetical = scan.hits, scan.hypothetical
        scores: dict[str, float] = defaultdict(float)
        danger: dict[str, float] = defaultdict(float)
        cues: dict[str, list[str]] = defaultdict(list)
        ignored: list[str] = []
        caution: list[str] = []  # danger cues set aside by a frame: keep 110 in the call
        # A danger cue the rules read and set aside (negated, past, habit, framed): the
        # rules have positive evidence that the danger is not happening now, so the
        # model may not escalate on the same words.
        set_aside = False
        by_code = self.data.by_code
        # Hints only support an entry that a real keyword or pattern already matched.
        anchored = {h.entry.code for h in hits if not h.hint and not h.negated}
        for hit in hits:
            entry = hit.entry
            if hit.hint and entry.code not in anchored:
                continue
            # A consultation is the exception: "请问我爸突然晕倒了怎么办" asks about a danger
            # that is happening, so the model may still weigh it (at FRAMED_ESCALATE).
            if entry.emergency and (hit.negated or hit.frame or hit.tense is Tense.PAST
                                    or hypothetical or scan.frame == "story"):
                set_aside = True
            if entry.emergency and scan.animal and not hit.negated:
                # An animal in trouble: animal rescue (119) if it is stuck or in water,
                # an ordinary matter if it is hurt; never a medical emergency.
                rescue = by_code.get(ANIMAL_RESCUE)
                if entry.platform == "120" or rescue is None:
                    ignored.append(f"{hit.cue}(animal)")
                else:
                    scores[rescue.code] += hit.weight
                    cues[rescue.code].append(f"{hit.cue}(animal)")
                continue
            if hit.negated or hit.frame == "prevention":
                ignored.append(f"{hit.cue}({'negated' if hit.negated else 'prevention'})")
                continue
            framed = ("hypothetical" if hypothetical else scan.frame
                      or ("worry" if hit.frame == "worry" else None))
            over = hit.tense is Tense.PAST or framed is not None
            if entry.emergency and framed and hit.tense is not Tense.PAST:
                caution.append(f"{hit.cue}({framed})")
            if over and entry.when_past and framed != "story":
                target = by_code[entry.when_past]
                scores[target.code] += hit.weight
                cues[target.code].append(f"{hit.cue}({framed or 'past'})")
                continue
            if entry.emergency and framed:
                # A danger that is asked about, feared or acted out: no desk owns it
                # by itself; the caution below keeps 110 in the call.
                ignored.append(f"{hit.cue}({framed})")
                continue
            scores[entry.code] += hit.weight
            if entry.emergency and not over:
                danger[entry.code] += hit.weight
                cues[entry.code].append(f"{hit.cue}(now)")
            else:
                cues[entry.code].append(hit.cue if not over else f"{hit.cue}(past)")
        note = f"; ignored: {', '.join(ignored)}" if ignored else ""
        if danger:
            return self._emergency(danger, scores, cues, note)
        decision = self._ordinary(scores, cues, note, scan.urgent)
        # 110 leads only because of wording (a harm cue, or urgency with no rule): a
        # soft lead the model may hand back to 12345 when it is sure the matter is ordinary.
        soft = bool(scan.harm_cue and decision.primary == DEFAULT_PLATFORM) or (
            decision.category is None and decision.primary == URGENT_UNKNOWN_PLATFORM)
        if scan.harm_cue and decision.primary == DEFAULT_PLATFORM:
            decision = _police_leads(decision, scan.harm_cue)
        else:
            decision = _with_caution(decision, caution)
        if self.model is None or scan.animal:
            return decision
        talk = scan.frame is not None or scan.hypothetical  # story, question, consultation
        if set_aside:
            # The model reads only the clauses where nothing was set aside, and nothing
            # at all when the whole text is a story or a question.
            if scan.hypothetical or scan.frame == "story" or not scan.model_text:
                return decision
            text = scan.model_text
        return _second_opinion(decision, self.model.predict(text), talk, soft,
                               remnant=set_aside)

    def _emergency(self, danger, scores, cues, note) -> Decision:
        by_code = self.data.by_code
        ranked = sorted(danger, key=lambda c: (-danger[c], c))
        platforms = {by_code[c].platform for c in ranked}
        # Several desks in danger: police dispatch first (directive); otherwise the
        # strongest signal's desk (fire only -> 119, medical only -> 120).
        primary = by_code[ranked[0]].platform
        leading = [c for c in ranked if by_code[c].leads]
        if leading:
            primary = by_code[leading[0]].platform  # not breathing: the ambulance first
        elif "110" in platforms and len(platforms) > 1:
            primary = "110"
        lead = next(c for c in ranked if by_code[c].platform == primary)
        also: list[str] = []
        # Non-urgent hits on desk entries add context: "被车撞了" + "流血" pulls in 122.
        context = sorted((c for c in scores if c not in danger
                          and by_code[c].platform in EMERGENCY_PLATFORMS),
                         key=lambda c: (-scores[c], c))
        for code in [lead, *ranked, *context]:
            entry = by_code[code]
            for p in (entry.platform, *entry.also):
                if p != primary and p not in also:
                    also.append(p)
        total = sum(danger.values())
        rules = "; ".join(f"{c} {by_code[c].name} <- {', '.join(cues[c])}" for c in ranked)
        return Decision(
            primary=primary, also=tuple(also), three_party=False, emergency=True,
            confidence=round(min(0.99, 0.6 + 0.15 * total), 2),
            reason=f"emergency: {rules}{note}", category=lead,
            linkage=by_code[lead].linkage,
        )

    def _ordinary(self, scores, cues, note, urgent) -> Decision:
        by_code = self.data.by_code
        if not scores:
            if urgent:
                return Decision(primary=URGENT_UNKNOWN_PLATFORM, also=("12345",),
                                three_party=True, emergency=False, confidence=0.0,
                                reason=f"no rule matched but a cry for help or harm wording: "
                                       f"110 leads a three-party call{note}", category=None)
            return Decision(primary=DEFAULT_PLATFORM, also=("110",), three_party=True,
                            emergency=False, confidence=0.0,
                            reason=f"no catalogue rule matched: three-party call{note}",
                            category=None)
        per_platform: dict[str, float] = defaultdict(float)
        for code, score in scores.items():
            per_platform[by_code[code].platform] += score
        order = sorted(per_platform, key=lambda p: (-per_platform[p], p))
        primary = order[0]
        top = per_platform[primary]
        rival = order[1] if len(order) > 1 else None
        rival_score = per_platform[rival] if rival else 0.0
        lead = max((c for c in scores if by_code[c].platform == primary),
                   key=lambda c: (scores[c], c))
        entry = by_code[lead]
        why = []
        if entry.linkage == "three_party":
            why.append("catalogue says three-party")
        if rival and rival_score >= CONFLICT_RATIO * top:
            why.append(f"conflict {primary}:{top:.1f} vs {rival}:{rival_score:.1f}")
        if top < MIN_CONFIDENT_SCORE:
            why.append(f"weak evidence ({top:.1f})")
        also = list(entry.also)
        if why and rival and rival not in also and rival != primary:
            also.append(rival)
        confidence = (top / (top + rival_score)) * min(1.0, top / 2.0)
        rules = "; ".join(
            f"{c} {by_code[c].name} <- {', '.join(cues[c])}"
            for c in sorted(scores, key=lambda c: (-scores[c], c))[:3]
        )
        prefix = f"three-party ({', '.join(why)})" if why else "match"
        return Decision(
            primary=primary, also=tuple(also), three_party=bool(why), emergency=False,
            confidence=round(confidence, 2), reason=f"{prefix}: {rules}{note}",
            category=lead, linkage=entry.linkage,
        )


def _second_opinion(decision: Decision, opinion: Opinion, talk: bool,
                    soft: bool, remnant: bool = False) -> Decision:
    """The n-gram model's say when no danger rule fired.

    Recall first: a 12345 (or utility) decision that the model reads as an emergency
    goes to the model's emergency desk, which leads a three-party call with 12345. A
    *soft* 110 lead (wording alone, no rule) goes to the model's desk when it names
    another emergency desk clearly (嘴唇发紫 -> 120), and back to 12345 only when the
    model is nearly sure the matter is ordinary. On a *remnant* (the clauses left once
    the rules set a danger cue aside) the model must be nearly sure to escalate.
    """
    p = opinion.p_emergency
    if decision.primary not in EMERGENCY_PLATFORMS:
        bar = ESCALATE_UNMATCHED if decision.category is None else ESCALATE
        bar = FRAMED_ESCALATE if talk else bar
        if p < (REMNANT_ESCALATE if remnant else bar):
            return decision
        return _model_leads(decision, opinion, _rule_desk(decision, opinion))
    if not soft or talk:
        return decision
    if p < DEESCALATE:
        also = ("110", *(x for x in decision.also if x not in {"110", DEFAULT_PLATFORM}))
        return replace(decision, primary=DEFAULT_PLATFORM, also=also, three_party=True,
                       reason=f"{decision.reason}; {opinion.describe()}: ordinary "
                              f"matter, 12345 leads with 110 in the call")
    desk = opinion.top_emergency
    if desk != decision.primary and opinion.probs[desk] >= DESK_SWITCH:
        return _model_leads(decision, opinion, desk)
    return decision


def _rule_desk(decision: Decision, opinion: Opinion) -> str:
    """The model's emergency desk, unless the matched entry names a desk of its own
    (爆管水淹 -> 119) that the model rates at least half as likely."""
    top = opinion.top_emergency
    named = [p for p in decision.also if p in EMERGENCY_PLATFORMS and p != top]
    best = max(named, key=lambda p: opinion.probs[p], default=None)
    if best is not None and opinion.probs[best] >= RULE_DESK_SHARE * opinion.probs[top]:
        return best
    return top


def _model_leads(decision: Decision, opinion: Opinion, desk: str) -> Decision:
    also = ("12345", *(x for x in (decision.primary, *decision.also)
                       if x not in {"12345", desk}))
    return replace(decision, primary=desk, also=tuple(dict.fromkeys(also)), three_party=True,
                   caution=True, reason=f"{decision.reason}; {opinion.describe()}: {desk} "
                                        f"leads a three-party call")


def _frame(clause: str, start: int, worry: bool) -> str | None:
    if after_prevention(clause, start):
        return "prevention"
    return "worry" if worry else None


def _police_leads(decision: Decision, cue: str) -> Decision:
    """A live harm cue (not negated, past or framed) but no danger rule: the match is
    unclear, so 110 leads a three-party call with 12345 instead of a 12345 queue."""
    also = ("12345", *(p for p in decision.also if p not in {"12345", "110"}))
    return replace(decision, primary=URGENT_UNKNOWN_PLATFORM, also=also, three_party=True,
                   caution=True, reason=f"{decision.reason}; harm cue {cue}(now): 110 leads "
                                        f"a three-party call")


def _with_caution(decision: Decision, caution: list[str]) -> Decision:
    """A live or framed danger cue never leaves 12345 alone with the call.

    12345 as primary becomes a three-party call with 110 in `also`, so the police
    desk hears it; the reason names the cue.
    """
    if not caution:
        return decision
    cues = ", ".join(dict.fromkeys(caution))
    if decision.primary != DEFAULT_PLATFORM:
        return replace(decision, caution=True)
    also = decision.also if "110" in decision.also else (*decision.also, "110")
    return replace(decision, also=also, three_party=True, caution=True,
                   reason=f"{decision.reason}; caution, danger cue: {cues}")


def _token_at(tokens: list[str], char_index: int) -> int:
    pos = 0
    for i, tok in enumerate(tokens):
        pos += len(tok)
        if pos > char_index:
            return i
    return max(0, len(tokens) - 1)


class LiveClassifier:
    """A classifier that rebuilds itself after a successful `Catalogue.reload()`."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._generation = catalogue.generation
        self._classifier = Classifier(catalogue.data)

    def classify(self, text: str) -> Decision:
        if self.catalogue.generation != self._generation:
            self._classifier = Classifier(self.catalogue.data)
            self._generation = self.catalogue.generation
        return self._classifier.classify(text)
