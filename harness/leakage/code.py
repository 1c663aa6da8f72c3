"""Code leaking into answers (MBPP's style: a bare Python function, often with asserts)."""

from __future__ import annotations

import re

from .text import fenced_blocks, without_fenced_blocks

# Lines that only code has: definitions, imports, test asserts, C-family headers and signatures.
STRONG_LINE = re.compile(
    r"""^\s*(?:
        def\s+[A-Za-z_]\w*\s*\(.*\)\s*(?:->\s*[^:]+)?:\s*$          # def f(x):
      | class\s+[A-Za-z_]\w*\s*(?:\([^)]*\))?\s*:\s*$               # class A(B):
      | import\s+[A-Za-z_][\w.]*(?:\s+as\s+\w+)?(?:\s*,\s*[A-Za-z_][\w.]*)*\s*$
      | from\s+[A-Za-z_.][\w.]*\s+import\s+[\w*(][\w\s,*()]*$
      | assert\s+[A-Za-z_][\w.]*\s*\(.*\)\s*(?:==|!=|is\b|in\b)     # assert f(1) == 2
      | \#include\s*[<"]
      | (?:public|private|protected|static|int|void|fn|func|function)\b[^\n]*\([^\n]*\)\s*(?:->\s*\S+\s*)?\{\s*$
    )""",
    re.X,
)
# Weaker code-shaped lines: statements and blocks; they count only next to a strong line.
CODE_LINE = re.compile(
    r"""^\s*(?:
        return\b.* | (?:for|while|if|elif|with)\b[^\n]*:\s*$ | else:\s*$ | try:\s*$ | except\b.*:\s*$
      | print\(.*\)\s*$ | [A-Za-z_][\w.\[\]]*\s*(?:[-+*/%]?=)\s*\S.*$ | .*[;{}]\s*$
    )""",
    re.X,
)


def code(text: str) -> bool:
    """Source code appears: a fenced block that holds code, or bare code lines.

    Fires on a ``` block with a language tag or a code-shaped line, and on unfenced code with
    at least one unmistakable line (`def f(x):`, `import os`, `assert f(1) == 2`, `#include <x>`)
    plus one more code-shaped line. Does not fire on prose about code ("the import of goods"),
    inline `backticks`, ordinary lists, or a fenced block of plain text.
    """
    for info, body in fenced_blocks(text):
        lines = [line for line in body.splitlines() if line.strip()]
        if info or any(STRONG_LINE.match(line) or CODE_LINE.match(line) for line in lines):
            return True
    lines = [line for line in without_fenced_blocks(text).splitlines() if line.strip()]
    strong = sum(1 for line in lines if STRONG_LINE.match(line))
    weak = sum(1 for line in lines if not STRONG_LINE.match(line) and CODE_LINE.match(line))
    return strong >= 2 or (strong >= 1 and weak >= 1)
