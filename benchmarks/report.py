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
below with the marker's other arguments. Every marked figure also has to name a line with a real
commit: `--check` fails on a line whose commit is "unknown".
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tables  # noqa: E402  (the table renderers)
from results_log import ReportError, dig, fmt, newest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- bench (?P<args>[^>]*?) -->(?P<body>.*?)<!-- /bench -->", re.DOTALL)


def docs() -> list[Path]:
    return [p for p in [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                        *sorted((ROOT / "data_cards").glob("*.md"))] if p.exists()]


def render_figure(args: dict, where: list[str]) -> str:
    row = newest(args["file"], where)
    value = dig(row["figures"], args["figure"])
    if value is None:
        raise ReportError(f"{args['file']}: figures.{args['figure']} is missing in the line of {row['date']}")
    return fmt(value, args.get("fmt"))


# ---- tables ------------------------------------------------------------------------------------
# Every public function of tables.py renders one table: fn(args, where) -> markdown.
TABLES = {name: fn for name, fn in vars(tables).items()
          if callable(fn) and not name.startswith("_") and getattr(fn, "__module__", "") == "tables"}


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


def process(path: Path, write: bool) -> list[str]:
    """Problems in one doc; with `write`, the doc is rewritten from the results instead."""
    text = path.read_text()
    problems: list[str] = []

    def sub(m: re.Match) -> str:
        line = text.count("\n", 0, m.start()) + 1
        try:
            want = render(*parse_args(m.group("args")))
        except (ReportError, KeyError, ValueError) as e:
            problems.append(f"{path.relative_to(ROOT)}:{line}: {e}")
            return m.group(0)
        if m.group("body") != want:
            if not write:
                got = m.group("body").strip().splitlines()[:1]
                problems.append(f"{path.relative_to(ROOT)}:{line}: differs from the newest results line "
                                f"(doc: {got[0] if got else ''!r}, results: {want.strip().splitlines()[0]!r})")
        return m.group(0)[:m.start("body") - m.start()] + want + "<!-- /bench -->"

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
    problems = [p for d in docs() for p in process(d, write=a.write)]
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"{'checked' if a.check else 'wrote'} {sum(len(MARKER.findall(d.read_text())) for d in docs())} "
          f"marked figures in {len(docs())} docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
