"""The `omnireward` command: a thin Typer layer; each command parses, calls one library function, prints."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from omnireward.cli import export_cmd, probe_cmd, report_cmd, serve_cmd
from omnireward.config import compose_config, group_options
from omnireward.errors import ConfigError, OmniRewardError
from omnireward.objectives import OBJECTIVES, objective
from omnireward.scoring.models import resolve_model
from omnireward.scoring.report import group_line, head_lines, summary_table

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    help="Train, score, evaluate, export and serve multimodal reward models (text, image, video, audio, 3D).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Convert, validate and build preference data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ENSEMBLE_HELP = (
    "mean|min|mean_minus_std: how the members' rewards, each normalised by its folder's reward "
    "statistics, are combined per response (their mean; the lowest; mean - λ·std)."
)

FORMATS = "auto|" + "|".join(
    [
        "native",
        "omnirewardbench",
        "sharegpt",
        "trl",
        "vlrewardbench",
        "genaibench",
        "rewardbench",
        "rewardbench2",
        "videogenrewardbench",
        "mmrb2",
        "mmrewardbench",
        "editrewardbench",
        "hpdv3",
        "imagerewarddb",
        "mjbench",
    ]
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")):
    """omnireward: multimodal reward models from one tool."""


# ---- data ---------------------------------------------------------------------------------
@data_app.command("prep")
def data_prep(
    src: Path = typer.Argument(..., help="A file (JSON, JSONL, parquet) or an Omni-RewardBench folder."),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMATS),
    out_path: Path = typer.Option(
        ..., "--out", "-o", help="Native JSONL to write; refused records go to OUT.rejects.jsonl."
    ),
    media_root: Path | None = typer.Option(None, help="Folder that relative media paths resolve against."),
    allow_outside_root: bool = typer.Option(False, help="Allow media paths that escape the media root."),
    shuffle_sides: bool = typer.Option(False, help="Swap response1/response2 in about half the pairs (by id hash)."),
    seed: int = typer.Option(0, help="Seed for --shuffle-sides."),
    check_media: bool = typer.Option(True, help="Refuse records whose media files are missing."),
):
    """Convert SRC to native JSONL; prints counts per task and per label."""
    # deferred: the data formats load only when a command reads data (keeps --help fast)
    from omnireward.data.prep import prep

    report = prep(
        src,
        fmt,
        out_path,
        media_root=media_root,
        shuffle_sides=shuffle_sides,
        seed=seed,
        check_media=check_media,
        allow_outside_root=allow_outside_root,
    )
    out.print(report.summary())


@data_app.command("validate")
def data_validate(
    path: Path = typer.Argument(..., help="Preference file to check."),
    media_root: Path | None = typer.Option(None, help="Folder that relative media paths resolve against."),
    allow_outside_root: bool = typer.Option(False, help="Allow media paths that escape the media root."),
    decode: bool = typer.Option(True, help="Decode every media file (slower, catches corrupt files)."),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMATS),
):
    """Check schema, labels, media presence/decoding and paths; one line per problem, exit 1 if any."""
    # deferred: the data formats load only when a command reads data (keeps --help fast)
    from omnireward.data.validate import validate

    problems = validate(
        path, media_root=media_root, allow_outside_root=allow_outside_root, decode_media=decode, fmt=fmt
    )
    for p in problems:
        out.print(str(p), markup=False, highlight=False)
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/] in {path}")
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {path}")


@data_app.command("demo")
def data_demo(
    modality: str = typer.Option("text", "--modality", "-m", help="text|image|video|audio|3d|omni"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for train/val/test.jsonl and media/."),
    n_pairs: int | None = typer.Option(None, help="Training pairs (default: a few hundred)."),
    seed: int = typer.Option(0, help="Seed: the same seed builds the same set."),
):
    """Build a small demo preference set from real media shipped in Python packages.

    test.jsonl shows only sources (photos, clips, meshes, voices, topics) train.jsonl never shows.

    val.jsonl holds new draws of the training sources. Each data card says which is which.
    """
    # deferred: numpy and PIL load only when a demo set is built (keeps --help fast)
    from omnireward.data.demo import build_demo

    folder = build_demo(modality, out_dir, n_pairs=n_pairs, seed=seed)
    out.print(f"demo set ({modality}) written to {folder}")


# ---- train --------------------------------------------------------------------------------
def _train_help() -> str:
    groups = "\n".join(f"  {g}={'|'.join(opts)}" for g, opts in group_options().items())
    return (
        "Train a reward model; arguments are Hydra overrides (key=value).\n\n"
        f"Config groups:\n\n{groups}\n\n"
        "Any key can be set, e.g. trainer.max_epochs=5 data.train=train.jsonl data.val=val.jsonl "
        "backbone.lm_layers=4 output_dir=runs/x seed=1. Use --cfg to print the composed config.\n\n"
        "Example: omnireward train model=bt modality=audio data.train=train.jsonl output_dir=runs/audio"
    )


@app.command("train", help=_train_help(), context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_cmd(
    ctx: typer.Context,
    cfg: bool = typer.Option(False, "--cfg", help="Print the composed config and exit."),
    config_dir: list[Path] = typer.Option(
        [],
        "--config-dir",
        help="A folder of your own config groups "
        "(e.g. DIR/loss/my_loss.yaml), searched before the packaged "
        "ones; repeatable. Python modules beside them can be _target_s.",
    ),
):
    from omegaconf import OmegaConf

    overrides = list(ctx.args)
    conf = compose_config(overrides, config_dirs=config_dir)
    if cfg:
        out.print(OmegaConf.to_yaml(conf), markup=False, highlight=False)
        return
    # deferred: torch, transformers and lightning load only when a command needs them (keeps --help fast)
    from omnireward.train import train

    folder = train(conf)
    what = objective(conf).noun
    k = (conf.get("ensemble") or {}).get("members", 1)
    if k > 1:
        what = f"ensemble of {k} ({what}s in member-0 … member-{k - 1})"
    out.print(f"{what} saved to {folder}\nscore with: omnireward score PAIRS.jsonl --model {folder}")


# ---- score / eval -------------------------------------------------------------------------
@app.command("score")
def score_cmd(
    path: Path = typer.Argument(
        ...,
        help="Pairs, pointwise items or groups (responses: [...]) in any supported "
        "format. JSONL and parquet are read lazily; a JSON document whole.",
    ),
    model: list[str] | None = typer.Option(
        None,
        help="Model folder (default: newest under runs/). Repeat it (--model A --model B), or name a "
        "folder of model folders (train ... ensemble.members=K), to score with an ensemble.",
    ),
    ensemble: str | None = typer.Option(
        None,
        help="With several models: "
        + ENSEMBLE_HELP
        + " Default mean. Lines get the combined rewards and an `ensemble` field "
        "(each member's normalised reward, their mean and std); see docs/guards.md.",
    ),
    ensemble_lambda: float = typer.Option(1.0, help="With --ensemble mean_minus_std: λ in mean - λ·std."),
    out_path: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Scores JSONL (default: INPUT.scores.jsonl). Rerunning with the same --out continues an interrupted run.",
    ),
    overwrite: bool = typer.Option(
        False,
        help="Start over: remove an existing --out (and its state, rejects and summary) instead of continuing it.",
    ),
    batch_size: int = typer.Option(
        16,
        help="Records per forward pass (a pair is 2 sequences, a group of N is N); "
        "sorted by length within windows of 1024 records.",
    ),
    fmt: str = typer.Option("auto", "--format", "-f", help=FORMATS),
    workers: int = typer.Option(
        1,
        help="DataLoader processes that prepare batches (tokens, media decoding) "
        "while the model runs; 0 prepares them in the main process.",
    ),
    on_bad_record: str = typer.Option(
        "reject",
        help="reject: records that cannot be read (bad JSON or fields, "
        "missing media) go to OUT.rejects.jsonl with file:line and "
        "reason; stop: the first one ends the run with that line.",
    ),
    engine: str = typer.Option(
        "local", help="local (this machine) or ray (Ray Data actors, one model per worker; see docs/distributed.md)."
    ),
    address: str | None = typer.Option(
        None,
        help="With --engine ray: the cluster to join (e.g. "
        "head-node:6379, or 'auto'); default: RAY_ADDRESS or a "
        "local cluster.",
    ),
    num_workers: int = typer.Option(2, help="With --engine ray: scoring actors (each loads the model once)."),
    gpus_per_worker: float = typer.Option(0.0, help="With --engine ray: GPUs per actor (0: CPU actors)."),
    cpus_per_worker: float = typer.Option(1.0, help="With --engine ray: CPUs per actor."),
    quant: str = typer.Option(
        "none",
        help="4bit|8bit (bitsandbytes; 4bit quantises while loading), int8 (CPU: "
        "torch's dynamic int8 on the LM's linear layers), bf16 (the LM in "
        "bfloat16; CPUs with avx512_bf16/amx) or none.",
    ),
    compare_full: bool = typer.Option(
        False,
        help="With --quant: also score in full precision (OUT.full.jsonl) "
        "and report the agreement (margin signs, Kendall τ).",
    ),
    media_root: Path | None = typer.Option(None, help="Folder that relative media paths resolve against."),
    allow_outside_root: bool = typer.Option(False, help="Allow media paths that escape the media root."),
    device: str = typer.Option("auto", help="auto|cpu|cuda|cuda:N"),
    judge: str | None = typer.Option(
        None,
        help="omni|think|flex (or a template .yaml): a generative judge "
        "writes a critique and a verdict instead of BT rewards. A judge "
        "folder (model=r1) judges with its own template without it.",
    ),
    max_new_tokens: int = typer.Option(256, help="With --judge: critique length limit."),
    both_orders: bool = typer.Option(False, help="With --judge: judge A/B and B/A and average (position bias)."),
    seed: int = typer.Option(0, help="With --judge: sampling seed."),
    temperature: float | None = typer.Option(
        None, help="With --judge: critique sampling temperature (0 = greedy; default 0, or 1.0 with --samples > 1)."
    ),
    samples: int = typer.Option(
        1,
        help="With --judge: K sampled critiques per pair (and per order) that vote: majority verdict, "
        "mean p_response1, agreement; seeded per record. 1: one critique, as before.",
    ),
    top_p: float = typer.Option(1.0, help="With --judge: nucleus sampling threshold for sampled critiques."),
    free_decoding: bool = typer.Option(
        False, help="With --judge flex: let the critique run free instead of constraining it to the Flex JSON grammar."
    ),
    prefix_sharing: bool = typer.Option(
        True,
        help="Compute a pair's prompt once for both responses (same "
        "rewards; --no-prefix-sharing runs each response alone).",
    ),
):
    """Reward every pair (reward1, reward2, margin), item (reward) or group (rewards, ranking, best);
    write scores and a summary.

    Scores are appended batch by batch; after an interruption (even kill -9) the same command
    continues where it stopped, and a different model, input or option under the same --out is
    refused. With --judge, each pair gets a critique, a verdict and p_response1 (from the
    verdict-token probabilities, so every pair gets one); without --model the embedded instruct
    LM judges zero-shot.
    """
    # deferred: torch loads only when a command needs it (keeps --help fast)
    from omnireward.scoring.bt import score_file
    from omnireward.scoring.stream import RayOptions

    out_path = out_path or Path(path.name.rsplit(".", 1)[0] + ".scores.jsonl")
    ray = RayOptions(
        address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker
    )
    common = dict(
        media_root=media_root,
        allow_outside_root=allow_outside_root,
        fmt=fmt,
        overwrite=overwrite,
        on_bad_record=on_bad_record,
        engine=engine,
        ray=ray,
        device=device,
        batch_size=batch_size,
    )
    members = _ensemble_members(model, ensemble)
    if members is not None:
        # deferred: torch loads only when a command needs it (keeps --help fast)
        from omnireward.scoring.ensemble import score_ensemble_file

        if judge or compare_full:
            raise ConfigError(
                "an ensemble combines reward models: --judge and --compare-full score one model", field="--model"
            )
        summary = score_ensemble_file(
            path,
            members,
            out_path,
            rule=ensemble or "mean",
            lam=ensemble_lambda,
            quant=quant,
            workers=workers,
            prefix_sharing=prefix_sharing,
            **common,
        )
        _print_summary(summary, out_path)
        return
    model_dir = resolve_model(model[0] if model else None) if (model or not judge) else None
    # deferred: torch loads only when a command needs it (keeps --help fast)
    from omnireward.model_folder import is_model_folder, open_folder

    if model_dir is not None and is_model_folder(model_dir):
        model_dir = open_folder(model_dir)  # its config read once, handed down
    if judge or (is_model_folder(model_dir) and not model_dir.objective.reward_head):
        # deferred: torch loads only when a command needs it (keeps --help fast)
        from omnireward.scoring.judge import judge_file

        if quant != "none" or compare_full:
            raise ConfigError(
                "--quant and --compare-full apply to reward models; a judge scores in the precision "
                "its backbone loads in (trained with quant=4bit for 4-bit)",
                field="--quant",
            )
        summary = judge_file(
            path,
            model_dir,
            out_path,
            judge=judge,
            max_new_tokens=max_new_tokens,
            both_orders=both_orders,
            seed=seed,
            temperature=temperature,
            samples=samples,
            top_p=top_p,
            constrained=not free_decoding,
            **common,
        )
    else:
        summary = score_file(
            path,
            model_dir,
            out_path,
            quant=quant,
            compare_full=compare_full,
            workers=workers,
            prefix_sharing=prefix_sharing,
            **common,
        )
    _print_summary(summary, out_path)


def _ensemble_members(model: list[str] | None, rule: str | None) -> list[str] | None:
    """The member folders when `--model` names an ensemble (several folders, a folder of model
    folders, or one folder with --ensemble), else None (one model, scored as before)."""
    # deferred: torch loads only when a command needs it (keeps --help fast)
    from omnireward.scoring.ensemble import is_ensemble_folder

    models = list(model or [])
    if len(models) > 1 or (models and is_ensemble_folder(models[0])) or (models and rule is not None):
        return models
    if rule is not None:
        raise ConfigError("names no members: pass --model DIR (repeatable) with it", field="--ensemble")
    return None


def _print_summary(summary: dict, out_path: Path) -> None:
    # deferred: torch loads only when a command needs it (keeps --help fast)
    from omnireward.scoring.bt import summary_path

    if summary["n"]:
        out.print(summary_table(summary))
    for line in head_lines(summary):
        out.print(line)
    if summary.get("groups"):
        out.print(group_line(summary["groups"]))
    if summary.get("text_verdict_disagreement") is not None:
        out.print(f"critiques whose own verdict disagreed: {summary['text_verdict_disagreement']:.1%}")
    if summary.get("samples", 1) > 1 and summary.get("mean_agreement") is not None:
        va = summary.get("vote_accuracy")
        out.print(
            f"{summary['samples']} samples per pair: majority-vote accuracy "
            f"{'n/a' if va is None else f'{va:.1%}'}, samples agreeing with the majority {summary['mean_agreement']:.1%}"
        )
    if "agreement_with_full_precision" in summary:
        a = summary["agreement_with_full_precision"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731 (None: no pairs / constant rewards)
        out.print(f"agreement with full precision: sign {fmt(a['sign_agreement'])}, Kendall τ {fmt(a['kendall_tau'])}")
    if summary.get("n_rejected"):
        console.print(
            f"[yellow]{summary['n_rejected']} record(s) refused[/], each with file:line and reason, in "
            f"{summary['rejects']}"
        )
    out.print(f"scores: {out_path}\nsummary: {summary_path(out_path)}")


@app.command("eval")
def eval_cmd(
    bench: Path = typer.Argument(
        ...,
        help="A scores JSONL (margin or reward1/reward2 + preference), "
        "or a benchmark file/folder to score with --model.",
    ),
    model: str | None = typer.Option(None, help="Model folder, when BENCH must be scored first."),
    out_path: Path | None = typer.Option(None, "--out", "-o", help="Summary JSON to write."),
    batch_size: int = typer.Option(16, help="Batch size when scoring."),
    media_root: Path | None = typer.Option(None, help="Folder that relative media paths resolve against."),
    report: Path | None = typer.Option(
        None,
        help="Also write a report folder: index.html with plots, "
        "summary.json, pairs.html with the failing pairs' media.",
    ),
    data: Path | None = typer.Option(
        None, help="With a scores file: the records it belongs to (default: the input named in its summary)."
    ),
    benchmark: str | None = typer.Option(
        None,
        help="Name the benchmark when it cannot be told from the data "
        "(omnirewardbench|vlrewardbench|genaibench|rewardbench|"
        "videogenrewardbench).",
    ),
    overwrite: bool = typer.Option(
        False,
        help="With --model: score again from the start instead of resuming "
        "(needed when the model or data changed under the same scores file).",
    ),
):
    """Accuracy with and without ties (tie-calibrated ε), overall and per task; for a known
    benchmark also its own headline metric, and with --report a static report to look at."""
    # deferred: torch loads only when a command needs it (keeps --help fast)
    from omnireward.scoring.evaluate import eval_scores, is_scores_file

    if is_scores_file(bench) and model is None:
        summary = eval_scores(bench, out_path)
        scores, records = bench, data
    else:
        import json

        # deferred: torch loads only when a command needs it (keeps --help fast)
        from omnireward.model_folder import is_model_folder, open_folder

        model_dir = resolve_model(model)
        scores = out_path.with_suffix(".scores.jsonl") if out_path else Path(bench.name.split(".")[0] + ".scores.jsonl")
        if is_model_folder(model_dir):
            model_dir = open_folder(model_dir)  # its config read once, handed down
        # A judge folder judges with its own template; anything else is scored as a reward model.
        scorer = model_dir.objective if is_model_folder(model_dir) else OBJECTIVES["reward"]
        summary = scorer.score_file(
            bench, model_dir, scores, batch_size=batch_size, media_root=media_root, overwrite=overwrite
        )
        records = bench
        if out_path:
            out_path.write_text(json.dumps(summary, indent=2))
    out.print(summary_table(summary))
    for line in head_lines(summary):
        out.print(line)
    # deferred: matplotlib loads only when a report is written (keeps --help fast)
    from omnireward.report.build import benchmark_headline, write_report

    head = benchmark_headline(scores, data=records, benchmark=benchmark, media_root=media_root)
    if head:
        out.print(report_cmd.headline_table(head))
    if out_path:
        out.print(f"summary: {out_path}")
    if report:
        page = write_report(scores, report, data=records, benchmark=benchmark, media_root=media_root)
        out.print(f"report: {page}", soft_wrap=True)


export_cmd.register(app)
serve_cmd.register(app)
report_cmd.register(app)
probe_cmd.register(app)


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2."""
    debug = "--debug" in sys.argv
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except OmniRewardError as e:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
