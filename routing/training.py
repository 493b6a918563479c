"""Training lines for the n-gram model: catalogue examples plus the labelled TSV sets.

The only I/O besides the catalogue: it reads routing/data/*.tsv once per process.
A line's label is its first allowed platform; a utility counts as 12345 (the
hotline takes utility matters and raises a work order).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from routing.catalogue import CatalogueData
from routing.evaluation import Labelled, parse_labelled
from routing.ngram_model import LABELS, NgramModel

DATA_DIR = Path(__file__).parent / "data"
TRAINING_GLOBS = ("devset.tsv", "heldout*.tsv", "train*.tsv", "blind*.tsv")


def label_of(allowed: tuple[str, ...]) -> str:
    first = allowed[0]
    return first if first in LABELS else "12345"


def catalogue_pairs(data: CatalogueData) -> list[tuple[str, str]]:
    return [(ex, label_of((e.platform,))) for e in data.entries for ex in e.examples]


def labelled_pairs(items: Iterable[Labelled]) -> list[tuple[str, str]]:
    return [(i.text, label_of(i.allowed)) for i in items]


def training_files(data_dir: Path = DATA_DIR) -> list[Path]:
    return sorted({p for g in TRAINING_GLOBS for p in data_dir.glob(g)})


@functools.cache
def _file_pairs(data_dir: Path) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for path in training_files(data_dir):
        with path.open(encoding="utf-8") as fh:
            pairs += labelled_pairs(parse_labelled(fh, source=str(path)))
    return tuple(pairs)


def default_model(data: CatalogueData, data_dir: Path = DATA_DIR) -> NgramModel:
    """Model over this catalogue's examples and every shipped labelled set."""
    return NgramModel.train([*catalogue_pairs(data), *_file_pairs(data_dir)])
