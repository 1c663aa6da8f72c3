"""Each style detector on hand-written positives and near misses."""

from __future__ import annotations

import pytest

from implicit_if.leakage import DETECTORS, detect, get_detector, leakage_records, leakage_summary

GSM_POSITIVE = [
    "She buys 4 notebooks at $3 each: 4 * 3 = <<4*3=12>>12.\n#### 12",
    "Half of 30 is 15.\n\n#### 15\n\n",
    "The loss is 7 - 10 = -3.\n#### -3",
    "The total is 1,250 apples.\n####1,250",
    "Each share is 2.5 litres.\n#### 2.5",
    "Answer below.\n   ####   +42   ",
]
GSM_NEAR_MISS = [
    "#### Step 1: Preheat\nThen bake for 20 minutes.",  # markdown heading
    "Loving this weather #blessed #2024",  # hashtags
    "##### 42",  # five hashes
    "#### 42 apples",  # text after the number
    "#### 42\nThat is the answer, I think.",  # not the last line
    "Here is a shell snippet:\n```\necho done\n#### 42\n```",  # inside a code block
    "#### 12 ####",
    "The answer is 42.",
]
CODE_POSITIVE = [
    "def add(a, b):\n    return a + b",
    "```python\nprint('hi')\n```",
    "```\nx = compute(3)\n```",
    "import os\nprint(os.getcwd())",
    "assert square(3) == 9\nassert square(0) == 0",
    "#include <stdio.h>\nint main(void) {\n  return 0;\n}",
    "Here you go:\n\nfrom collections import Counter\ncounts = Counter(words)",
]
CODE_NEAR_MISS = [
    "The import of goods rose by 4% while exports fell.",
    "Use the `print` function to show a value.",
    "1. Eat well.\n2. Sleep eight hours.\n3. Exercise daily.",
    "```\nDear Sam,\nThanks for the lovely gift.\n```",
    "If you are tired:\nrest, drink water, and sleep early.",
    "Define the term before you use it; then return to the main argument.",
]
CHESS_POSITIVE = [
    "1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 5. O-O Be7 1-0",
    "1. f3 e5 2. g4 Qh4# 0-1",
    "1.d4 d5 2.c4 e6 3.Nc3 Nf6",
    '[White "Alice"]\n[Black "Bob"]\n\nShort draw.',
    "12. Qxd8+ Kxd8 13. Bg5+ f6 14. O-O-O+ Ke8",
]
CHESS_NEAR_MISS = [
    "1. Eat well 2. Sleep 3. Exercise",
    "The opening 1. e4 is the most popular first move.",
    "Put the rook on a1 and the king on e1.",
    "Version 2.4 was released after 2.3 and before 3.0.",
    "Steps: 1. Add 2 cups 2. Mix well 3. Bake",
    "[Note] see page 4",
]
POEM_POSITIVE = [
    "The kettle sings before the dawn,\na small brave note against the grey,\n"
    "and I, with one sock on, one gone,\nwill take whatever comes today.",
    "Rain on the Roof\n\nSoft drums at night\nover the sleeping street\n\n"
    "the gutters hum along\nand morning comes complete",
    "There once was a dog from the Tyne\nwho howled every night about nine\n"
    "the neighbours complained\nbut the dog never changed\nand he howls to this day, doing fine",
]
POEM_NEAR_MISS = [
    "Water boils at 100 degrees Celsius at sea level, which is 212 degrees Fahrenheit. "
    "At higher altitudes the boiling point is lower because the air pressure is lower.",
    "- Apples\n- Bananas\n- Cherries\n- Dates\n- Elderberries",
    "1. Eat well.\n2. Sleep eight hours.\n3. Exercise daily.\n4. Drink water.",
    "John Smith\n12 Main Street\nSpringfield",
    "| name | age |\n| --- | --- |\n| Ann | 31 |\n| Bo | 28 |",
    "def f(x):\n    y = x + 1\n    z = y * 2\n    return z",
    "How many bones are in the human body?\n" * 9 + "How many bones are i",  # a decoding loop
    "The sky is blue.\nThe sun is at the center.\n" + "The sun is at the center.\n" * 8,
]
RECIPE_POSITIVE = [
    "Pancakes\n\n- 1 cup flour\n- 2 tablespoons sugar\n- 1 egg\n- 3/4 cup milk\n\n"
    "1. Whisk the flour and sugar.\n2. Beat in the egg and milk.\n3. Cook on a hot pan until golden.",
    "Ingredients:\n* Salt\n* Pepper\n* Olive oil\n\nMethod:\nRub everything over the fish.",
    "2 ripe avocados\n1 lime, juiced\n1/2 small red onion, chopped\nsalt\n\n"
    "Mash the avocados with a fork.\nStir in the lime juice and onion.\nSeason to taste.",
]
RECIPE_NEAR_MISS = [
    "Shopping list:\n- 2 cups flour\n- 1 dozen eggs\n- 3 apples",  # no steps
    "1. Preheat the oven.\n2. Mix the batter.\n3. Bake for 20 minutes.",  # steps, no ingredients
    "Priya uses 2 cups of flour and 3 eggs for each cake. How many eggs for 4 cakes?\n#### 12",
    "1. Eat well.\n2. Sleep eight hours.\n3. Exercise daily.",
    "3 reasons to learn Python\n2 reasons to learn Rust\n1 reason to learn C\n\nStart with one and practise.",
]

CASES = [
    ("gsm", GSM_POSITIVE, GSM_NEAR_MISS),
    ("code", CODE_POSITIVE, CODE_NEAR_MISS),
    ("chess", CHESS_POSITIVE, CHESS_NEAR_MISS),
    ("poem", POEM_POSITIVE, POEM_NEAR_MISS),
    ("recipe", RECIPE_POSITIVE, RECIPE_NEAR_MISS),
]


@pytest.mark.parametrize("name,text", [(n, t) for n, pos, _ in CASES for t in pos])
def test_detector_fires_on_its_style(name: str, text: str) -> None:
    assert get_detector(name)(text) is True


@pytest.mark.parametrize("name,text", [(n, t) for n, _, neg in CASES for t in neg])
def test_detector_ignores_near_misses(name: str, text: str) -> None:
    assert get_detector(name)(text) is False


def test_calculator_marks_are_a_separate_secondary_signal() -> None:
    with_marks = "She pays 4 * 3 = $<<4*3=12>>12 in total."
    assert detect(with_marks)["gsm_calculator"] is True
    assert detect(with_marks)["gsm"] is False  # no final #### line
    assert detect("Shift with x << 2 and y >> 1")["gsm_calculator"] is False
    assert detect("```\n<<a=b>>\n```")["gsm_calculator"] is False


def test_plain_prose_answer_fires_nothing() -> None:
    prose = "Paris is the capital of France. It is known for the Eiffel Tower and its museums."
    assert not any(detect(prose).values())


def test_registry_names_and_unknown_detector() -> None:
    assert set(DETECTORS) >= {"gsm", "code", "chess", "poem", "recipe"}
    with pytest.raises(ValueError, match="unknown detector 'haiku'"):
        get_detector("haiku")


def test_records_and_summary() -> None:
    outputs = [GSM_POSITIVE[0], CODE_POSITIVE[0], "Just prose here.", GSM_POSITIVE[1]]
    records = leakage_records(outputs)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r["gsm"] for r in records] == [True, False, False, True]
    assert set(records[0]) == {"index", *DETECTORS}
    summary = leakage_summary(records)
    assert summary["gsm"]["count"] == 2 and summary["gsm"]["n"] == 4
    assert summary["gsm"]["rate"] == pytest.approx(0.5)
    assert summary["gsm"]["ci_low"] < 0.5 < summary["gsm"]["ci_high"]
    assert summary["chess"]["rate"] == 0.0 and summary["chess"]["ci_low"] == 0.0 and summary["chess"]["ci_high"] > 0
    with pytest.raises(ValueError):
        leakage_summary([])
