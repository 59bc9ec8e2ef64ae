"""The copy-paste blocks of docs/serving.md that tests run, and the `$(python -c "...")` they hold."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def snippet(name: str) -> str:
    """The fenced block under `<!-- snippet: NAME -->` in docs/serving.md."""
    m = re.search(rf"<!-- snippet: {name} -->\n```\w+\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert m, f"docs/serving.md has no {name} block"
    return m.group(1)


def python_c(command: str) -> str:
    """What `$(python -c "...")` prints, run in this interpreter."""
    code = re.fullmatch(r'python -c "(.*)"', command).group(1)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
