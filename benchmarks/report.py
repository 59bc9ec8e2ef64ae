"""Keep the figures in the docs equal to the newest results lines.

    python benchmarks/report.py --check    # exit 1 when a figure or table in the docs differs
    python benchmarks/report.py --write    # rewrite them from benchmarks/results/*.jsonl

A figure in README.md, docs/*.md, data_cards/*.md or benchmarks/README.md sits between two markers that name
where it comes from; nothing between them is typed by hand:

    accuracy <!-- bench figure file=demo_runs where=tag:text figure=test_accuracy fmt=.2f -->0.96<!-- /bench -->

    <!-- bench table name=demo_runs -->
    | modality | ... |
    <!-- /bench -->

`figure` reads `figures.<figure>` (dots go deeper) of the newest line of results/<file>.jsonl whose
fields match every `where=key:value` (dots go deeper, e.g. where=figures.modality:text);
`fmt` is a Python format spec, or `pct` (one decimal, with %), `x` (a ratio, one decimal, with ×),
`int`, `s` (seconds, no decimals), `min` (minutes, one decimal). `table` calls a renderer of TABLES
below with the marker's other arguments.

Every results line a marker renders has to name a commit it can be traced to: `--check` and
`--write` refuse a line whose commit is "unknown", ends in `+dirty` (measured with uncommitted
changes) or, where the checkout has its git history (a `.git` beside this folder), is not a commit
of HEAD's history. A line with a `tree_commit` (code of another checkout) is judged by its `commit`
like any other. In a copy without `.git` (CI copies the files alone) the history check is skipped
with a printed note; `+dirty` and "unknown" still fail there. A `<!-- bench` or `<!-- /bench -->`
that is not part of a well-formed marker fails too, so no marked figure goes unchecked.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # noqa: E402  (the table renderers)
from results_log import ReportError, dig, fmt, newest, reading  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- bench (?P<args>[^>]*?) -->(?P<body>.*?)<!-- /bench -->", re.DOTALL)
# Anything that looks like the start or the end of a marker: each must belong to a MARKER match.
OPENING = re.compile(r"<!--\s*bench\b")
CLOSING = re.compile(r"<!--\s*/\s*bench\s*-->")
HASH = re.compile(r"[0-9a-f]{7,40}")


def docs() -> list[Path]:
    return [
        p
        for p in [
            ROOT / "README.md",
            ROOT / "benchmarks" / "README.md",
            *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "data_cards").glob("*.md")),
        ]
        if p.exists()
    ]


def render_figure(args: dict, where: list[str]) -> str:
    row = newest(args["file"], where)
    value = dig(row["figures"], args["figure"])
    if value is None:
        raise ReportError(f"{args['file']}: figures.{args['figure']} is missing in the line of {row['date']}")
    return fmt(value, args.get("fmt"))


# ---- tables ------------------------------------------------------------------------------------
# Every public function of tables.py renders one table: fn(args, where) -> markdown.
TABLES = {
    name: fn
    for name, fn in vars(tables).items()
    if callable(fn) and not name.startswith("_") and getattr(fn, "__module__", "") == "tables"
}


# ---- commits ----------------------------------------------------------------------------------
class History:
    """The commits a results line may name: HEAD and its ancestors in the git history of `root`.

    Without `root/.git` (a copy of the files, as CI makes) there is no history to read: `note` says
    so and only the commit's form is checked. With `.git` but no usable git, every commit fails
    with the reason."""

    def __init__(self, root: Path):
        self.root = root
        self.note: str | None = None  # printed once: why commits were not checked against a history
        self._error: str | None = None
        self._hashes: list[str] | None = None
        self._shallow = False
        if not (root / ".git").exists():
            self.note = (
                f"note: {root} has no .git, so the commits of results lines could not be verified "
                "against the git history (only +dirty and unknown commits are refused)"
            )
            return
        try:
            self._shallow = self._git("rev-parse", "--is-shallow-repository") == "true"
            self._hashes = self._git("rev-list", "HEAD").split()
        except FileNotFoundError:
            self._error = "git is not installed, so it cannot be checked against the git history"
        except RuntimeError as e:
            self._error = f"git could not read the history ({e})"
        if self._shallow:
            self.note = (
                "note: this is a shallow clone: a commit older than its history is not verified "
                "(fetch the full history to check every commit)"
            )

    def _git(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
        r = subprocess.run(["git", *args], cwd=self.root, env=env, capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError((r.stderr.strip().splitlines() or [f"git {args[0]} exited {r.returncode}"])[0])
        return r.stdout.strip()

    def problem(self, commit) -> str | None:
        """Why a results line's commit cannot back a figure, or None when it can."""
        if not commit or commit == "unknown":
            return "no commit"
        if not isinstance(commit, str):
            return "a commit that is not a hash"
        if commit.endswith("+dirty"):
            return "a +dirty commit (measured with uncommitted changes)"
        if not HASH.fullmatch(commit):
            return "a commit that is not a hash"
        if self._error:
            return self._error
        if self._hashes is None or any(h.startswith(commit) for h in self._hashes):
            return None  # no history here (the note says so), or found in it
        if self._shallow:
            return None  # possibly older than a shallow clone's history (the note says so)
        return "a commit that is not in the git history of HEAD"


def commit_problems(rows: list[dict], history: History) -> list[str]:
    """One phrase per results line whose commit cannot back a figure."""
    out, seen = [], set()
    for row in rows:
        key = (row.get("bench"), row.get("date"), row.get("commit"))
        if key in seen:
            continue
        seen.add(key)
        why = history.problem(row.get("commit"))
        if why:
            out.append(
                f"results line {row.get('bench', '?')} of {row.get('date', '?')} has commit "
                f"{row.get('commit')!r}: {why}"
            )
    return out


# ---- checking and writing ---------------------------------------------------------------------
def parse_args(text: str) -> tuple[str, dict, list[str]]:
    words = shlex.split(text)
    kind, args, where = words[0], {}, []
    for w in words[1:]:
        k, _, v = w.partition("=")
        if k == "where":
            where.append(v)
        else:
            args[k] = v
    return kind, args, where


def render(kind: str, args: dict, where: list[str]) -> str:
    if kind == "figure":
        return render_figure(args, where)
    if kind == "table":
        name = args.get("name")
        if name not in TABLES:
            raise ReportError(f"unknown table {name!r} (known: {', '.join(sorted(TABLES))})")
        return "\n" + TABLES[name](args, where).strip("\n") + "\n"
    raise ReportError(f"unknown marker kind {kind!r} (figure or table)")


def process(path: Path, write: bool, history: History | None = None) -> list[str]:
    """Problems in one doc; with `write`, the doc is rewritten from the results instead (unless it
    has a problem)."""
    history = history or History(ROOT)
    text = path.read_text()
    problems: list[str] = []
    name = path.relative_to(ROOT)
    bounds = {b for m in MARKER.finditer(text) for b in (m.start(), m.end() - len("<!-- /bench -->"))}
    for pattern, what in ((OPENING, "opening"), (CLOSING, "closing")):
        for m in pattern.finditer(text):
            if m.start() not in bounds:
                line = text.count("\n", 0, m.start()) + 1
                problems.append(
                    f"{name}:{line}: a marker {what} ({text[m.start() : m.start() + 60].splitlines()[0]!r}) "
                    "that is not part of a well-formed <!-- bench ... -->...<!-- /bench --> marker, "
                    "so nothing checks it"
                )

    def sub(m: re.Match) -> str:
        line = text.count("\n", 0, m.start()) + 1
        opening = f"<!-- bench {m.group('args')} -->"
        try:
            with reading() as used:
                want = render(*parse_args(m.group("args")))
        except (ReportError, KeyError, ValueError) as e:
            problems.append(f"{name}:{line}: {e}")
            return m.group(0)
        bad = commit_problems(used, history)
        for why in bad:
            problems.append(f"{name}:{line}: {opening} renders {why}")
        if bad:
            return m.group(0)
        if m.group("body") != want:
            if not write:
                got = m.group("body").strip().splitlines()[:1]
                problems.append(
                    f"{name}:{line}: differs from the newest results line "
                    f"(doc: {got[0] if got else ''!r}, results: {want.strip().splitlines()[0]!r})"
                )
        return m.group(0)[: m.start("body") - m.start()] + want + "<!-- /bench -->"

    new = MARKER.sub(sub, text)
    if write and new != text and not problems:
        path.write_text(new)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true", help="fail when a doc differs from the results")
    g.add_argument("--write", action="store_true", help="rewrite the marked figures from the results")
    a = ap.parse_args(argv)
    history = History(ROOT)
    if history.note:
        print(history.note)
    problems = [p for d in docs() for p in process(d, write=a.write, history=history)]
    for p in problems:
        print(p)
    if problems:
        return 1
    print(
        f"{'checked' if a.check else 'wrote'} {sum(len(MARKER.findall(d.read_text())) for d in docs())} "
        f"marked figures in {len(docs())} docs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
