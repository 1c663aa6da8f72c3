"""Recipe layout leaking into answers: an ingredient list, then preparation steps."""

from __future__ import annotations

import re

from .text import without_fenced_blocks

MARKER = r"(?:[-*+\u2022]\s*|\d+[.)]\s*)?"
QUANTITY = (
    r"(?:\d+(?:[./]\d+)?(?:\s*-\s*\d+)?|\d+\s+\d/\d|[\u00bc\u00bd\u00be\u2153\u2154]|"
    r"(?:a|an|one|two|three|four|half)\b)"
)
UNIT = (
    r"(?:cups?|c\.|tablespoons?|tbsps?\.?|tbs\.?|teaspoons?|tsps?\.?|ounces?|oz\.?|pounds?|lbs?\.?|grams?|g|kg|ml|"
    r"millilit(?:er|re)s?|lit(?:er|re)s?|l|pinch(?:es)?|dash(?:es)?|cloves?|cans?|jars?|packages?|sticks?|slices?|"
    r"bunch(?:es)?|sprigs?|handfuls?|quarts?|pints?|heads?|stalks?|pieces?)"
)
# "2 cups flour", "- 1/2 tsp salt", "3 large eggs", "1 lemon, zested": a quantity then food words.
INGREDIENT_LINE = re.compile(
    rf"^\s*{MARKER}{QUANTITY}\s*(?:{UNIT}\b\.?\s*(?:of\s+)?|(?:large|medium|small|whole)\s+)?[A-Za-z][^\n]{{1,80}}$",
    re.I,
)
LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+\S")
INGREDIENTS_HEADING = re.compile(r"^\W*ingredients\b[^\n]{0,30}$", re.I)
STEPS_HEADING = re.compile(r"^\W*(?:directions|instructions|method|preparation|steps|to make)\b[^\n]{0,30}$", re.I)
COOKING_VERB = (
    r"(?:preheat|heat|mix|stir|whisk|beat|combine|add|pour|bake|roast|boil|simmer|fry|saut[eé]|grill|cook|"
    r"chop|dice|slice|season|serve|place|put|transfer|remove|drain|knead|fold|spread|cover|let|bring|toss|"
    r"arrange|rest|cool|melt|blend|grease|line|sprinkle|garnish|pat|cut|peel|marinate|reduce|halve|mash|split|"
    r"layer|drizzle|top|assemble|squeeze|scoop|wash|rinse|soak|shape|roll|brush|mince|grate|steam|puree|chill|"
    r"refrigerate|freeze|strain|sift|crack|divide|flip|turn|scatter|shake|pulse|process|warm|toast|dust)"
)
STEP_LINE = re.compile(rf"^\s*(?:(?:step\s*)?\d+[.):]\s*|[-*\u2022]\s*)?{COOKING_VERB}\b", re.I)
MIN_INGREDIENTS = 3
MIN_STEPS = 2


def recipe(text: str) -> bool:
    """An ingredient list, then at least two cooking steps or a "Directions"/"Method" heading.

    The ingredient list is three or more consecutive lines that start with a quantity
    ("2 cups flour", "- 1/2 tsp salt", "3 large eggs"), or an "Ingredients" heading followed by
    two or more items.

    Does not fire on a shopping list without steps, steps without an ingredient list, numbered
    lists of advice, or a GSM word problem that mentions cups of flour in running text.
    """
    lines = [line.strip() for line in without_fenced_blocks(text).splitlines() if line.strip()]
    ingredients_end = None
    run, headed = 0, False
    for index, line in enumerate(lines):
        if INGREDIENTS_HEADING.match(line):
            headed, run = True, 0
            continue
        listed = headed and LIST_ITEM.match(line) is not None  # under the heading any short item counts
        if (INGREDIENT_LINE.match(line) or listed) and len(line) <= 90 and not STEP_LINE.match(line):
            run += 1
            if run >= MIN_INGREDIENTS or (headed and run >= 2):
                ingredients_end = index
        elif ingredients_end is not None:
            break
        else:
            run = 0
    if ingredients_end is None:
        return False
    rest = lines[ingredients_end + 1 :]
    if any(STEPS_HEADING.match(line) for line in rest):
        return True
    return sum(1 for line in rest if STEP_LINE.match(line)) >= MIN_STEPS
