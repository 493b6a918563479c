"""jieba segmentation with the catalogue's keywords as whole words.

Each Segmenter owns a private jieba.Tokenizer, so adding keywords never leaks into
the global jieba other modules use. The base dictionary loads once per process
and is copied, because loading it costs about a second.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import jieba

jieba.setLogLevel(logging.WARNING)

# High enough that a keyword always beats any split of it into common words.
_KEYWORD_FREQ = 10**7

_base: jieba.Tokenizer | None = None
_base_lock = threading.Lock()


def _base_tokenizer() -> jieba.Tokenizer:
    global _base
    with _base_lock:
        if _base is None:
            tok = jieba.Tokenizer()
            tok.initialize()
            _base = tok
        return _base


class Segmenter:
    def __init__(self, words: Iterable[str]) -> None:
        base = _base_tokenizer()
        tok = jieba.Tokenizer()
        # jieba keeps its whole state in FREQ/total; copying them is the documented
        # effect of initialize() without re-reading the dictionary file.
        tok.FREQ = dict(base.FREQ)
        tok.total = base.total
        tok.initialized = True
        for word in words:
            if len(word) > 1:
                tok.add_word(word, freq=_KEYWORD_FREQ)
        self._tok = tok

    def cut(self, text: str) -> list[str]:
        # HMM off: unknown runs fall apart into characters, which is what keyword
        # lookup wants, and it is faster and deterministic.
        return self._tok.lcut(text, HMM=False)
