"""`omnireward inspect`, and the table `eval` prints for a benchmark's own headline metric."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table


def headline_table(head: dict) -> Table:
    """The benchmark's own figures, named in its own terms."""
    t = Table(title=f"{head['benchmark']}: its own metric")
    t.add_column("figure", justify="left")
    t.add_column("value", justify="right")

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}%"

    t.add_row(head["metric"], pct(head.get("value")))
    for key in ("sections", "groups"):
        for name, v in (head.get(key) or {}).items():
            t.add_row(f"  {name}", pct(v))
    if isinstance(head.get("overall"), dict):
        t.add_row(
            "  Overall w/ ties · w/o ties",
            f"{pct(head['overall']['with_ties'])} · {pct(head['overall']['without_ties'])}",
        )
    for dim, v in (head.get("dimensions") or {}).items():
        t.add_row(f"  {dim} w/ ties · w/o ties", f"{pct(v['with_ties'])} · {pct(v['without_ties'])}")
    if head.get("macro") is not None:
        t.add_row("  macro average", pct(head["macro"]))
    return t


def register(app: typer.Typer) -> None:
    """Add the `inspect` command (and the `bench` group, cli/bench_cmd.py) to the omnireward Typer app."""
    from omnireward.cli import bench_cmd  # registered here so that cli/app.py needs no change for it

    bench_cmd.register(app)

    @app.command("inspect")
    def inspect_cmd(
        scores: Path = typer.Argument(..., help="A scores JSONL written by `omnireward score` (lines carry `id`)."),
        out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for pairs.html and the media it shows."),
        data: Path | None = typer.Option(
            None, help="The records the scores belong to (default: the input named in SCORES.summary.json)."
        ),
        media_root: Path | None = typer.Option(None, help="Folder that relative media paths resolve against."),
        n_wrong: int = typer.Option(24, help="How many of the most confidently wrong pairs to show."),
        n_right: int = typer.Option(8, help="How many right pairs to show (a seeded random sample)."),
        seed: int = typer.Option(0, help="Seed for the sample of right pairs."),
    ):
        """Build the failing-pairs page for any scores file: prompt, criteria, both responses with
        their media playable in the browser, rewards, margin, gold label and the judge's critique."""
        # deferred: matplotlib loads only when a report is written (keeps --help fast)
        from omnireward.report.build import write_pairs

        page = write_pairs(
            scores, out_dir, data=data, media_root=media_root, n_wrong=n_wrong, n_right=n_right, seed=seed
        )
        typer.echo(f"pairs page: {page}")
