"""Turn tokens named by text into ids of one tokenizer's vocabulary.

The study hard-coded Llama-2 ids; naming tokens by text makes the rules portable. A vocabulary
spells a leading space differently depending on its family: SentencePiece writes "▁I",
byte-level BPE (GPT-2 style) writes "ĠI" and maps every byte to a printable character
("\\n" is "Ċ"), SentencePiece with byte fallback may also hold "<0x0A>". We detect the family
from the vocabulary itself and build the spelling the tokenizer would use; a text that is not
a single token of the vocabulary is skipped with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .config import TokenShift

SENTENCEPIECE, BYTE_LEVEL, PLAIN = "sentencepiece", "byte_level", "plain"


class MissingTokenWarning(UserWarning):
    """A named token has no single-token spelling in this vocabulary; its shift is skipped."""


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """The reversible byte -> printable character table of byte-level BPE vocabularies.

    Printable Latin-1 bytes stand for themselves; the others (control bytes, space, ...) are
    moved, in byte order, to code points from 256 up (so the space byte 0x20 becomes "Ġ").
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    moved = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + moved)
            moved += 1
    return table


def vocabulary_convention(vocab: Mapping[str, int]) -> str:
    """Which family spells this vocabulary's word-initial tokens: SentencePiece ("▁"), byte-level ("Ġ"), or plain."""
    metaspace = sum(1 for piece in vocab if piece.startswith("▁"))
    byte_space = sum(1 for piece in vocab if piece.startswith("Ġ"))
    if metaspace == byte_space == 0:
        return PLAIN
    return SENTENCEPIECE if metaspace >= byte_space else BYTE_LEVEL


def spellings(text: str, form: str, convention: str) -> list[str]:
    """Pieces that could spell `text` as one token in `form` ("bare" or "spaced"), preferred first.

    SentencePiece's byte-fallback piece ("<0x0A>") comes last: a vocabulary that has the
    character itself never produces it.
    """
    surface = text if form == "bare" else " " + text
    if convention == BYTE_LEVEL:
        table = byte_to_char()
        return ["".join(table[b] for b in surface.encode("utf-8"))]
    if convention == SENTENCEPIECE:
        pieces = [surface.replace(" ", "▁")]
        encoded = surface.encode("utf-8")
        if len(encoded) == 1:  # byte-fallback piece, e.g. "<0x0A>" for a newline
            pieces.append(f"<0x{encoded[0]:02X}>")
        return pieces
    return [surface]


@dataclass(frozen=True)
class ResolvedTokens:
    """The rules' view of one tokenizer: shifted ids (summed if two names meet), EOS and padding ids."""

    shift_ids: tuple[int, ...]
    shift_values: tuple[float, ...]
    eos_id: int | None
    pad_id: int | None
    convention: str
    matched: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    missing: tuple[str, ...] = ()

    def shifts(self) -> dict[int, float]:
        return dict(zip(self.shift_ids, self.shift_values))


def resolve_shifts(
    vocab: Mapping[str, int], token_shifts: tuple[TokenShift, ...], convention: str | None = None
) -> tuple[dict[int, float], dict[str, tuple[str, ...]], list[str]]:
    """Map each named token to the ids that spell it; returns (id -> shift, matches, missing)."""
    convention = convention or vocabulary_convention(vocab)
    shifts: dict[int, float] = {}
    matched: dict[str, tuple[str, ...]] = {}
    missing: list[str] = []
    for entry in token_shifts:
        found: list[str] = []
        for form in entry.forms:
            piece = next((p for p in spellings(entry.text, form, convention) if p in vocab), None)
            if piece is None:
                missing.append(f"{entry.text!r} ({form})")
            else:
                found.append(piece)
        for piece in dict.fromkeys(found):
            token_id = vocab[piece]
            shifts[token_id] = shifts.get(token_id, 0.0) + entry.shift
        matched[entry.text] = tuple(dict.fromkeys(found))
    return shifts, matched, missing


def resolve_tokens(tokenizer: Any, token_shifts: tuple[TokenShift, ...], warn: bool = True) -> ResolvedTokens:
    """Resolve the named tokens for a (transformers) tokenizer; warns about names it cannot spell."""
    vocab = tokenizer.get_vocab()
    convention = vocabulary_convention(vocab)
    shifts, matched, missing = resolve_shifts(vocab, token_shifts, convention)
    if missing and warn:
        warnings.warn(
            f"rules adapter: {len(missing)} named token form(s) are not single tokens of this "
            f"{convention} vocabulary and are skipped: {', '.join(missing)}",
            MissingTokenWarning,
            stacklevel=2,
        )
    ids = tuple(sorted(shifts))
    return ResolvedTokens(
        shift_ids=ids,
        shift_values=tuple(shifts[i] for i in ids),
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
        convention=convention,
        matched=matched,
        missing=tuple(missing),
    )
