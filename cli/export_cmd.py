"""`omnireward export`: a model folder that plain transformers (text) or `load_exported` (multimodal) loads."""

from __future__ import annotations

from pathlib import Path

import typer

from omnireward.scoring.models import resolve_model


def register(app: typer.Typer) -> None:
    """Add the `export` command to the omnireward Typer app."""

    @app.command("export")
    def export_cmd(
        model: str = typer.Option(..., "--model", help="Trained model folder (from `omnireward train`)."),
        out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the export to."),
        merge_lora: bool = typer.Option(
            True,
            "--merge-lora/--no-merge-lora",
            help="Merge LoRA adapters into the weights (default), or keep "
            "base weights + a peft adapter in OUT/adapter (text models).",
        ),
        dtype: str = typer.Option("float32", help="float32|bfloat16|float16 for the exported LM weights."),
    ):
        """Export for other tools: text models load with AutoModelForSequenceClassification
        (TRL GRPO reward_funcs, reward-bench), multimodal ones with omnireward.export.load_exported;
        always with a model card and reward statistics."""
        import json

        # deferred: torch loads only when a command needs it (keeps --help fast)
        from omnireward.export import HF_FORMAT, MANIFEST, export

        folder = export(resolve_model(model), out_dir, merge_lora=merge_lora, dtype=dtype)
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest["format"] == HF_FORMAT:
            typer.echo(
                f"exported {manifest['architecture']} (num_labels=1) to {folder}: "
                f"AutoModelForSequenceClassification.from_pretrained('{folder}')"
            )
        else:
            typer.echo(f"exported omnireward model to {folder}: omnireward.export.load_exported('{folder}')")
        if (folder / "adapter").exists():
            typer.echo(f"LoRA adapter (peft): {folder / 'adapter'}")
        typer.echo(f"model card: {folder / 'README.md'}")
        typer.echo(f"reward stats: {folder / 'reward_stats.json'}")
