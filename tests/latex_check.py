"""Render LaTeX with KaTeX (strict mode) in Node: a formula that does not parse fails the test."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

CHECKER = Path(__file__).parent / "latex" / "check.js"


def katex_errors(formulas: list[str]) -> dict[str, str]:
    """{formula: KaTeX's error} for every formula that does not render."""
    result = subprocess.run(["node", str(CHECKER)], input=json.dumps(formulas), capture_output=True,
                            text=True, check=True, timeout=60)
    answers = result.stdout.splitlines()
    assert len(answers) == len(formulas), result.stderr
    return {f: a for f, a in zip(formulas, answers) if a != "ok"}


def display_math(markdown: str) -> list[str]:
    """The $$...$$ blocks of a Markdown document."""
    return [m.strip() for m in re.findall(r"\$\$(.*?)\$\$", markdown, flags=re.S)]
