"""Every published figure comes from a results line: report.py --check passes, and no table in the
docs carries a measured-looking number outside a `<!-- bench ... -->` marker. The check itself is
tested on a small copy of the report in a temporary folder (with and without a git history): it
fails on a figure edited by hand, on a results line whose commit is not in the history or is
+dirty, and on a malformed marker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402

MARKED = re.compile(r"<!-- bench .*?-->.*?<!-- /bench -->", re.DOTALL)
# Measured-looking cells: accuracies (0.83), times, memory, throughput, percentages, ratios.
FIGURE = re.compile(r"(?<![\w.=/-])(0\.\d{2,}|\d+(\.\d+)?\s?(s|min|ms|MiB|GiB|MB|GB|pairs/s|req/s|%|×))(?![\w/])")


def _docs():
    return [
        p
        for p in [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        if p.exists()
    ]


def test_report_check_passes():
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0, r.stdout + r.stderr


def unmarked_table_figures(text: str) -> list[str]:
    text = MARKED.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return [line for line in text.splitlines() if line.lstrip().startswith("|") and FIGURE.search(line)]


def test_no_table_carries_a_figure_outside_a_marker():
    found = [
        f"{p.relative_to(ROOT)}: {line.strip()}" for p in _docs() for line in unmarked_table_figures(p.read_text())
    ]
    assert not found, "figures typed into tables:\n" + "\n".join(found)


def test_the_table_check_finds_typed_figures():
    assert unmarked_table_figures("| image | 0.83 | 8.6 min |")
    assert not unmarked_table_figures("<!-- bench table name=x -->\n| image | 0.83 |\n<!-- /bench -->")
    assert not unmarked_table_figures("| `loss=bt` | Bradley–Terry | r=16 |")


# ---- every marker in the docs is one the report reads ------------------------------------------
def test_the_report_reads_every_doc_and_data_card():
    read = set(report.docs())
    assert {ROOT / "README.md", ROOT / "benchmarks" / "README.md"} <= read
    assert set((ROOT / "docs").glob("*.md")) <= read and set((ROOT / "data_cards").glob("*.md")) <= read


def test_every_marker_in_the_docs_is_well_formed():
    """A marker the report's pattern does not match (a typo, no closing) would never be checked."""
    for p in report.docs():
        text = p.read_text()
        n = len(report.MARKER.findall(text))
        assert len(report.OPENING.findall(text)) == n == len(report.CLOSING.findall(text)), p


# Times and sizes of a build: measured figures, so never typed by hand into a data card's Build line.
TIME_OR_SIZE = re.compile(r"\d+(\.\d+)?\s?(ms|s|sec|min|KB|MB|GB|KiB|MiB|GiB)\b|\b(seconds?|minutes?)\b", re.I)


def _build_paragraphs(text: str) -> list[str]:
    text = MARKED.sub("", text)
    return [para for para in re.split(r"\n\s*\n", text) if para.lstrip().startswith("**Build**")]


def test_data_card_build_lines_carry_no_typed_times_or_sizes():
    cards = sorted((ROOT / "data_cards").glob("demo_*.md"))
    assert cards
    found = [
        f"{p.name}: {m.group(0)!r}"
        for p in cards
        for para in _build_paragraphs(p.read_text())
        for m in TIME_OR_SIZE.finditer(para)
    ]
    assert not found, "times or sizes typed into Build lines:\n" + "\n".join(found)


def test_the_build_line_check_finds_typed_figures():
    for typed in (
        "~3 s; ~18 MB (FLAC).",
        "A few seconds on 2 cores; ~24 MB",
        "Seconds; ~14 MB.",
        "Under a second; ~0.2 MB.",
    ):
        assert TIME_OR_SIZE.search(_build_paragraphs(f"**Build**: `omnireward data demo`. {typed}\n")[0]), typed
    assert not TIME_OR_SIZE.search(_build_paragraphs("**Build**: `omnireward data demo`. Images are 160×160 PNG.")[0])


# ---- report.py --check on a small tree -----------------------------------------------------------
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")
FIGURE_MARKER = "<!-- bench figure file=demo where=tag:a figure=acc fmt=.2f -->"
TABLE_MARKER = "<!-- bench table name=provenance file=demo where=tag:a -->"
DOC = f"The model scores {FIGURE_MARKER}?<!-- /bench --> on held-out pairs.\n\n{TABLE_MARKER}\n?\n<!-- /bench -->\n"
CARD = "**Measured**: shapes at <!-- bench figure file=demo where=tag:a figure=shapes fmt=.2f -->?<!-- /bench -->.\n"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {
        **env,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        **extra,
    }


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        [GIT, "-c", "commit.gpgsign=false", *args], cwd=root, env=_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


def _tree(tmp_path: Path, git: bool) -> Path:
    """A copy of the report with one doc and one data card; with `git`, a history of one commit."""
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    for name in ("report.py", "results_log.py", "tables.py"):
        shutil.copy(ROOT / "benchmarks" / name, root / "benchmarks" / name)
    (root / "README.md").write_text(DOC)
    (root / "data_cards").mkdir()
    (root / "data_cards" / "demo_x.md").write_text(CARD)
    if git:
        _git(root, "init", "-q")
        _git(root, "add", ".")
        _git(root, "commit", "-q", "-m", "report")
    return root


def _line(root: Path, commit: str, acc: float = 0.75, **fields) -> None:
    line = {
        "bench": "demo",
        "command": "python benchmarks/demo.py",
        "commit": commit,
        "machine": {"cores": 2},
        "date": "2026-01-01T00:00:00Z",
        "tag": "a",
        **fields,
        "figures": {"acc": acc, "shapes": 0.5},
    }
    with (root / "benchmarks" / "results" / "demo.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")


def _report(root: Path, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "benchmarks" / "report.py"), *args],
        cwd=root,
        env=_env(**env),
        capture_output=True,
        text=True,
    )


def _head(root: Path) -> str:
    return _git(root, "rev-parse", "--short=10", "HEAD")


@needs_git
def test_check_passes_on_a_rendered_tree_and_fails_on_a_figure_edited_by_hand(tmp_path):
    root = _tree(tmp_path, git=True)
    _line(root, _head(root))
    assert _report(root, "--write").returncode == 0
    assert "scores " + FIGURE_MARKER + "0.75<!-- /bench -->" in (root / "README.md").read_text()
    ok = _report(root, "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A prose figure edited by hand, in the README and in a data card.
    for doc, old, new in (("README.md", "0.75", "0.80"), ("data_cards/demo_x.md", "0.50", "0.55")):
        path = root / doc
        text = path.read_text()
        path.write_text(text.replace(f"-->{old}<", f"-->{new}<"))
        r = _report(root, "--check")
        assert r.returncode == 1 and f"{doc}:1: differs from the newest results line" in r.stdout, r.stdout
        assert repr(new) in r.stdout
        path.write_text(text)


@needs_git
@pytest.mark.parametrize("kind", ["missing", "dirty", "other branch", "tree_commit"])
def test_check_and_write_refuse_a_line_whose_commit_is_not_in_the_history(tmp_path, kind):
    root = _tree(tmp_path, git=True)
    _line(root, _head(root))
    assert _report(root, "--write").returncode == 0
    rendered = (root / "README.md").read_text()
    if kind == "missing":
        commit = "0123456789"
    elif kind == "dirty":
        commit = _head(root) + "+dirty"
    elif kind == "other branch":  # a commit of the repository that HEAD's history does not hold
        _git(root, "checkout", "-q", "-b", "side")
        (root / "side.txt").write_text("x")
        _git(root, "add", "side.txt")
        _git(root, "commit", "-q", "-m", "side")
        commit = _head(root)
        _git(root, "checkout", "-q", "-")
    else:  # measured with another checkout's code: still judged by its own commit
        commit = "0123456789"
    _line(root, commit, acc=0.9, **({"tree_commit": _head(root)} if kind == "tree_commit" else {}))
    for mode in ("--check", "--write"):
        r = _report(root, mode)
        assert r.returncode == 1, r.stdout
        errors = r.stdout.splitlines()
        # One line per marker (figure and table in the README, figure in the card), each naming
        # the doc, the marker and the commit.
        for where, marker in (
            ("README.md:1:", FIGURE_MARKER),
            ("README.md:3:", TABLE_MARKER),
            ("data_cards/demo_x.md:1:", "<!-- bench figure file=demo where=tag:a figure=shapes"),
        ):
            hit = [e for e in errors if e.startswith(where) and marker in e and repr(commit) in e]
            assert hit, (where, r.stdout)
            assert ("+dirty" if kind == "dirty" else "not in the git history of HEAD") in hit[0]
    assert (root / "README.md").read_text() == rendered  # --write did not render the line's 0.90


def test_without_a_git_history_the_check_says_it_cannot_verify_commits(tmp_path):
    root = _tree(tmp_path, git=False)
    _line(root, "0123456789")
    assert _report(root, "--write").returncode == 0
    r = _report(root, "--check")
    assert r.returncode == 0, r.stdout
    assert "has no .git, so the commits of results lines could not be verified" in r.stdout
    _line(root, "0123456789+dirty")  # +dirty needs no history to be refused
    r = _report(root, "--check")
    assert r.returncode == 1 and "'0123456789+dirty': a +dirty commit" in r.stdout, r.stdout


@needs_git
def test_with_a_history_but_no_git_the_error_says_git_is_missing(tmp_path):
    root = _tree(tmp_path, git=True)
    _line(root, _head(root))
    assert _report(root, "--write").returncode == 0
    empty = tmp_path / "bin"
    empty.mkdir()
    r = _report(root, "--check", PATH=str(empty))
    assert r.returncode == 1 and "git is not installed" in r.stdout, r.stdout


def test_a_malformed_marker_fails_the_check(tmp_path):
    root = _tree(tmp_path, git=False)
    _line(root, "0123456789")
    assert _report(root, "--write").returncode == 0
    card = root / "data_cards" / "demo_x.md"
    card.write_text(card.read_text().replace("<!-- /bench -->", "<!-- /bench ->"))
    r = _report(root, "--check")
    assert r.returncode == 1 and "data_cards/demo_x.md:1: a marker opening" in r.stdout, r.stdout


def test_a_results_line_does_not_make_the_next_run_dirty_but_a_code_change_does(tmp_path):
    """`results_log.commit()`: appended results lines leave the commit clean (the code is HEAD's);
    a changed tracked file anywhere else in the tree marks it `+dirty`."""
    root = _tree(tmp_path, git=True)
    (root / "benchmarks" / "results" / "demo.jsonl").write_text("")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "results file")
    head = _head(root)
    probe = [
        sys.executable,
        "-c",
        "import sys; sys.path.insert(0, 'benchmarks'); import results_log; print(results_log.commit())",
    ]

    def commit() -> str:
        return subprocess.run(probe, cwd=root, env=_env(), capture_output=True, text=True, check=True).stdout.strip()

    assert commit() == head
    _line(root, head)  # a benchmark appended its line
    assert commit() == head
    (root / "README.md").write_text(DOC + "\nedited\n")
    assert commit() == head + "+dirty"
