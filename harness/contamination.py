"""Contamination check: n-gram overlap between training texts and evaluation instructions.

Texts are lower-cased and split into word tokens (letters and digits); an evaluation example
shares an n-gram (13 by default, as in the GPT-3 paper and lm-eval's decontamination) with the
training set when the same n consecutive tokens occur in some training text. An example shorter
than n tokens is checked as a whole: it overlaps when its full token sequence occurs inside a
training text. Each example is reported with its counts and the training texts it matched, and
flagged when the share of its n-grams found in training reaches `min_overlap` (by default, any).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_N = 13
MAX_MATCHES_REPORTED = 5
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation and whitespace differences do not matter)."""
    return _TOKEN.findall(text.lower())


def ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass
class NgramIndex:
    """Every n-gram of the training texts, with the first few texts it occurs in."""

    n: int
    where: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    # All training texts as space-joined tokens, one per line, for examples shorter than n
    # tokens; `starts` holds where each text begins in it.
    corpus: str = ""
    starts: list[int] = field(default_factory=list)

    def texts_containing(self, words: Sequence[str], limit: int = MAX_MATCHES_REPORTED) -> list[int]:
        """Training texts whose token sequence contains `words` contiguously."""
        from bisect import bisect_right

        needle = " " + " ".join(words) + " "
        found: list[int] = []
        at = self.corpus.find(needle)
        while at != -1 and len(found) < limit:
            text = bisect_right(self.starts, at) - 1
            found.append(text)
            at = self.corpus.find(needle, self.starts[text + 1] if text + 1 < len(self.starts) else len(self.corpus))
        return found


def build_index(train_texts: Iterable[str], n: int = DEFAULT_N) -> NgramIndex:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    index = NgramIndex(n)
    lines: list[str] = []
    offset = 0
    for position, text in enumerate(train_texts):
        words = tokens(text)
        lines.append(" " + " ".join(words) + " ")
        index.starts.append(offset)
        offset += len(lines[-1]) + 1
        for gram in set(ngrams(words, n)):
            seen = index.where.setdefault(gram, [])
            if len(seen) < MAX_MATCHES_REPORTED:
                seen.append(position)
    index.corpus = "\n".join(lines)
    return index


def check_example(text: str, index: NgramIndex, min_overlap: float = 0.0) -> dict:
    """Overlap of one evaluation text with the training index."""
    words = tokens(text)
    if len(words) < index.n:  # too short for one n-gram: look for the whole text instead
        matches = index.texts_containing(words) if words else []
        total, hits = 1, int(bool(matches))
    else:
        grams = ngrams(words, index.n)
        total = len(grams)
        matched: list[int] = []
        hits = 0
        for gram in grams:
            found = index.where.get(gram)
            if found:
                hits += 1
                matched.extend(i for i in found if i not in matched)
        matches = matched[:MAX_MATCHES_REPORTED]
    overlap = hits / total if total else 0.0
    return {
        "n_tokens": len(words),
        "n_ngrams": total,
        "n_overlapping": hits,
        "overlap": overlap,
        "whole_text_check": len(words) < index.n,
        "matched_train": matches,
        "flagged": hits > 0 and overlap >= min_overlap,
    }


def contamination_records(
    eval_texts: Sequence[str],
    train_texts: Iterable[str],
    n: int = DEFAULT_N,
    min_overlap: float = 0.0,
    progress: bool = False,
) -> list[dict]:
    """One record per evaluation text: `index` plus the fields of `check_example`."""
    from tqdm.auto import tqdm

    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap is a share of n-grams: give a value in [0, 1], not {min_overlap}")
    index = build_index(train_texts, n)
    return [
        {"index": position, **check_example(text, index, min_overlap)}
        for position, text in enumerate(tqdm(eval_texts, desc="contamination", disable=not progress))
    ]


def contamination_summary(records: Sequence[dict]) -> dict:
    """How many evaluation examples are flagged, with a Wilson interval on the rate."""
    from .statistics import wilson_interval

    if not records:
        raise ValueError("no evaluation examples to summarise")
    flagged = [r["index"] for r in records if r["flagged"]]
    interval = wilson_interval(len(flagged), len(records))
    return {
        "n_examples": len(records),
        "n_flagged": len(flagged),
        "flagged_rate": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "flagged_indices": flagged,
    }
