"""Hand-written instruction/response pairs for the ranking tests (our own text)."""

from __future__ import annotations

import json
from pathlib import Path

PAIRS = [
    {"instruction": "Name three primary colours.", "response": "Red, yellow and blue."},
    {"instruction": "What is 12 times 12?", "response": "12 times 12 is 144."},
    {
        "instruction": "Write a two-line poem about snow.",
        "response": "White hush on the hill,\nthe whole town holding its breath.",
    },
    {"instruction": "Translate 'good morning' into French.", "response": "Bonjour."},
    {
        "instruction": "Give one tip for sleeping better.",
        "response": "Keep the bedroom cool and dark, and put screens away an hour before bed.",
    },
    {"instruction": "What is the capital of Japan?", "response": "The capital of Japan is Tokyo."},
    {"instruction": "Suggest a name for a grey cat.", "response": "How about Pebble? It suits a small grey cat."},
    {
        "instruction": "Explain what a noun is in one sentence.",
        "response": "A noun is a word that names a person, place, thing or idea.",
    },
]


def write_pairs(path: Path, pairs: list[dict] = PAIRS) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path
