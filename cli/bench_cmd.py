"""`omnireward bench omnirewardbench`: the real benchmark from its published layout to the paper's table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def table(rows: list[dict]) -> Table:
    from omnireward.bench.omnirewardbench import COLUMNS  # deferred: `omnireward --help` loads no scoring code

    t = Table(title="Omni-RewardBench (accuracy, %)")
    t.add_column("model")
    t.add_column("metric")
    for _, h in COLUMNS:
        t.add_column(h, justify="right")
    t.add_column("Overall", justify="right")
    for r in rows:
        t.add_row(
            r["model"],
            r["label"],
            *[
                "—" if r["values"].get(k) is None else f"{100 * r['values'][k]:.2f}"
                for k in [c for c, _ in COLUMNS] + ["overall"]
            ],
        )
    return t


def register(app: typer.Typer) -> None:
    """Add the `bench` command group to the omnireward Typer app."""
    bench_app = typer.Typer(help="Run a benchmark end to end from its published layout.", no_args_is_help=True)
    app.add_typer(bench_app, name="bench")

    @bench_app.command("omnirewardbench")
    def omnirewardbench_cmd(
        folder: Path = typer.Argument(
            ...,
            help="The downloaded benchmark: {task}_preferences.json files and "
            "media_data.zip (or media_data/ already extracted).",
        ),
        model: str = typer.Option(..., help="Model folder or hub id to score with."),
        out: Path = typer.Option(Path("omnirewardbench_run"), "--out", "-o", help="Folder for scores and the table."),
        quant: str = typer.Option("4bit", help="4bit (default: one GPU, bitsandbytes), 8bit, int8, bf16 or none."),
        batch_size: int = typer.Option(8, help="Records per forward pass."),
        device: str = typer.Option("auto", help="auto|cpu|cuda|cuda:N"),
        overwrite: bool = typer.Option(False, help="Score again from the start instead of resuming."),
    ):
        """Extract the media, convert the nine task files (FOLDER/pairs.jsonl), score every pair (resumable),
        and print the paper's table (9 tasks and Overall, with and without ties) beside the published
        rows; OUT/table.md and OUT/table.json keep it with sources."""
        from omnireward.bench.omnirewardbench import run  # deferred: `omnireward --help` loads no scoring code

        res = run(folder, model, out, quant=quant, batch_size=batch_size, device=device, overwrite=overwrite)
        console = Console()
        console.print(res["prep"].summary())
        console.print(table(res["rows"]))
        console.print(f"table: {out / 'table.md'}\nscores: {res['scores']}")
