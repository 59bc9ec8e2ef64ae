"""`omnireward probe`: perturbations that should not raise the reward, measured on a model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from omnireward.scoring.models import resolve_model


def register(app: typer.Typer) -> None:
    """Add the `probe` command to the omnireward Typer app."""

    @app.command("probe")
    def probe_cmd(
        path: Path = typer.Argument(..., help="Pairs, items or groups (any supported format) to perturb."),
        model: str = typer.Option(..., help="Model folder: a reward (BT, Gaussian, multi-head) or judge folder."),
        out_dir: Path = typer.Option(
            ...,
            "--out",
            "-o",
            help="Folder for probe.json, index.html, plots/ and the perturbed media (media/<probe>/).",
        ),
        probes: list[str] = typer.Option(
            [],
            "--probes",
            help="A probe set: a packaged name (default) or a YAML file of `probes: [{_target_: ...}]`; repeatable.",
        ),
        only: str | None = typer.Option(None, help="Comma-separated probe names to run (default: all)."),
        flag_share: float = typer.Option(
            0.75, help="Flag a probe when the reward rises in more than this share of the changed responses ..."
        ),
        min_effect: float = typer.Option(
            0.25, help="... and its mean change exceeds this (reward standard deviations; judges: probability)."
        ),
        fail_on_flag: bool = typer.Option(False, help="Exit with code 1 when any probe is flagged (a CI gate)."),
        max_records: int | None = typer.Option(None, help="Probe only the first N records."),
        batch_size: int = typer.Option(16, help="Records per forward pass."),
        max_new_tokens: int = typer.Option(64, help="Judge folders: critique length limit."),
        media_root: Path | None = typer.Option(None, help="Folder that relative media paths resolve against."),
        device: str = typer.Option("auto", help="auto|cpu|cuda|cuda:N"),
        seed: int = typer.Option(0, help="Seed of the random perturbations (noise, shuffles) and judge sampling."),
    ):
        """Change responses in ways that should not help them (padding, self-praise, markdown, criteria
        dropped or negated, JPEG, blur, noise, saturation, sharpening, a caption copying the prompt,
        audio noise, silence, gain, shuffled/frozen/reversed frames, decimated or noisy meshes, the
        order swapped for judges) and report, per probe, how often and how far the reward rose."""
        from rich.console import Console
        from rich.table import Table

        # deferred: the probes load only when a command needs them (keeps --help fast)
        from omnireward.probe.run import load_probes, run_probes

        names = [n.strip() for n in only.split(",") if n.strip()] if only else []
        chosen = load_probes(probes, names)
        result = run_probes(
            resolve_model(model),
            path,
            out_dir,
            probes=chosen,
            flag_share=flag_share,
            min_effect=min_effect,
            batch_size=batch_size,
            device=device,
            media_root=media_root,
            max_records=max_records,
            seed=seed,
            max_new_tokens=max_new_tokens,
        )
        t = Table(title=f"probes ({result['unit']})")
        for col in ("probe", "changed", "rose", "mean", "median", "verdict"):
            t.add_column(col, justify="left" if col == "probe" else "right")
        for p in result["probes"]:
            t.add_row(
                p["name"],
                str(p["n"]),
                f"{100 * p['share_rose']:.1f}%",
                f"{p['mean_change']:+.3f}",
                f"{p['median_change']:+.3f}",
                "[red]flagged[/]" if p["flagged"] else "ok",
            )
        out = Console()
        out.print(t)
        if result["skipped"]:
            out.print(
                "not run: " + "; ".join(f"{k} ({v})" for k, v in result["skipped"].items()),
                markup=False,
                highlight=False,
            )
        out.print(f"probe.json: {out_dir / 'probe.json'}\nreport: {out_dir / 'index.html'}", soft_wrap=True)
        if result["flagged"]:
            Console(stderr=True).print(f"[red]flagged:[/] {', '.join(result['flagged'])}")
            if fail_on_flag:
                raise typer.Exit(1)
