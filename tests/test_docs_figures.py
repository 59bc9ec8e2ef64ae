"""Every published figure comes from a results line: report.py --check passes, and no table in the
docs carries a measured-looking number outside a `<!-- bench ... -->` marker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"<!-- bench .*?-->.*?<!-- /bench -->", re.DOTALL)
# Measured-looking cells: accuracies (0.83), times, memory, throughput, percentages, ratios.
FIGURE = re.compile(r"(?<![\w.=/-])(0\.\d{2,}|\d+(\.\d+)?\s?(s|min|ms|MiB|GiB|MB|GB|pairs/s|req/s|%|×))(?![\w/])")


def _docs():
    return [p for p in [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
            if p.exists()]


def test_report_check_passes():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def unmarked_table_figures(text: str) -> list[str]:
    text = MARKED.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return [line for line in text.splitlines() if line.lstrip().startswith("|") and FIGURE.search(line)]


def test_no_table_carries_a_figure_outside_a_marker():
    found = [f"{p.relative_to(ROOT)}: {line.strip()}" for p in _docs() for line in unmarked_table_figures(p.read_text())]
    assert not found, "figures typed into tables:\n" + "\n".join(found)


def test_the_table_check_finds_typed_figures():
    assert unmarked_table_figures("| image | 0.83 | 8.6 min |")
    assert not unmarked_table_figures("<!-- bench table name=x -->\n| image | 0.83 |\n<!-- /bench -->")
    assert not unmarked_table_figures("| `loss=bt` | Bradley–Terry | r=16 |")
