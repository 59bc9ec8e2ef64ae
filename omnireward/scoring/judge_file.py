"""Scoring a file with a generative judge (`omnireward score --judge`): critique and verdict per
pair, pointwise scores per item, win rates per group, streamed and resumable, plus the judge's
own summary figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from omnireward.data.records import Group, Item, Pair, Record
from omnireward.errors import ConfigError
from omnireward.judge.grammar import constraint_for
from omnireward.judge.templates import JudgeTemplate
from omnireward.scoring.batch import line_for
from omnireward.scoring.identity import run_identity
from omnireward.scoring.judge_groups import group_scores
from omnireward.scoring.judge_infer import Judge, Sampling
from omnireward.scoring.judge_load import load_judge_backbone, template_for, trained_judge
from omnireward.scoring.output import ScoresFile
from omnireward.scoring.source import InputSource
from omnireward.scoring.stream import score_stream


def judge_file(
    path: str | Path,
    model_dir: str | Path | None,
    out: str | Path,
    *,
    judge: str | JudgeTemplate | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    both_orders: bool = False,
    device: str = "auto",
    seed: int = 0,
    temperature: float | None = None,
    samples: int = 1,
    top_p: float = 1.0,
    encoders=(),
    media_root: str | None = None,
    allow_outside_root: bool = False,
    constrained: bool = True,
    fmt: str = "auto",
    overwrite: bool = False,
    on_bad_record: str = "reject",
    engine: str = "local",
    ray=None,
    show_progress: bool = True,
) -> dict:
    """`omnireward score --judge` (or a judge folder): a critique and verdict for every pair, plus the summary.

    `judge`: a template name, a template YAML path, a JudgeTemplate, or None (the default): a judge
    folder's own template, else omni.
    Per pair line: id, task, critique, verdict (response1|response2|tie), p_response1,
    p_response2, p_tie, margin (= p_response1 - p_response2), preference when known;
    text_verdict and contradiction when the critique wrote its own verdict; Flex: flex_valid,
    flex (categories with per-dimension scores, normalised to sum to 10) and dimension_scores;
    both orders: critique_swapped, p_response1_by_order, order_agreement. Pointwise items get
    critique, score and reward (expected 0-10 score); groups are judged by all their pairs. The
    summary adds judge, text_verdict_disagreement (share of critiques with their own verdict that
    contradict the probabilities), text_verdict_share, and flex_valid_share / order_agreement.
    `constrained` keeps Flex critiques inside their JSON grammar (free-running decoding when false).

    `samples` K > 1: judges that vote (see `Sampling`): K critiques sampled per pair and order
    (`temperature`, default 1.0 then, and `top_p`), verdict = the majority, p_* = means over the
    samples; lines add samples, votes, agreement and critiques, and the summary samples,
    vote_accuracy and mean_agreement. With K = 1 the judge decodes as before (greedy unless
    `temperature` > 0).

    Streamed and resumable like BT scoring (scoring/stream.py); each batch samples with the seed
    `seed` and its batch number (with K > 1, each record with a seed of its own), so a resumed run
    writes what an uninterrupted one would.
    """
    sampling = None
    if samples != 1:
        if samples < 1:
            raise ConfigError(f"--samples must be at least 1, got {samples}", field="--samples")
        if temperature is not None and temperature <= 0:
            raise ConfigError(
                f"--samples {samples} votes over sampled critiques: give --temperature > 0, not {temperature}",
                field="--temperature",
            )
        sampling = Sampling(samples, 1.0 if temperature is None else temperature, top_p, seed)
    temperature = 0.0 if temperature is None else temperature
    source = InputSource.open(path, fmt)
    template = template_for(judge, model_dir)
    factory = JudgeFactory(
        str(model_dir) if model_dir is not None else None,
        template,
        device=device,
        encoders=tuple(encoders),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        both_orders=both_orders,
        seed=seed,
        constrained=constrained,
        top_p=top_p,
        sampling=sampling,
    )
    options = {
        "judge": template.name,
        "template": repr(template),
        "max_new_tokens": max_new_tokens,
        "both_orders": both_orders,
        "seed": seed,
        "temperature": temperature,
        "encoders": list(encoders),
        "constrained": constrained,
        "format": fmt,
        "media_root": str(Path(media_root).resolve()) if media_root else None,
        "allow_outside_root": allow_outside_root,
        "on_bad_record": on_bad_record,
    }
    if samples != 1 or top_p != 1.0:  # absent otherwise: a K = 1 run resumes files written before
        options.update(samples=samples, top_p=top_p)
    summary = score_stream(
        source,
        out,
        factory,
        run_identity(model_dir, source, options),
        batch_size=batch_size,
        fmt=fmt,
        media_root=media_root,
        allow_outside_root=allow_outside_root,
        overwrite=overwrite,
        workers=0,
        on_bad_record=on_bad_record,
        engine=engine,
        ray=ray,
        show_progress=show_progress,
        description=f"judging ({template.name})",
    )
    if "judge" not in summary:  # a fresh finish: add the judge's own figures, read from the file
        sf = ScoresFile(out)
        summary.update(_judge_summary(sf.lines(), template, model_dir, path, both_orders, samples))
        sf.summary_path.write_text(json.dumps(summary, indent=2))
    return summary


@dataclass
class JudgeFactory:
    """Builds the judge scorer: loads the backbone (here, or once per Ray actor)."""

    model_dir: str | None
    template: JudgeTemplate
    device: str = "auto"
    encoders: tuple = ()
    max_new_tokens: int = 256
    temperature: float = 0.0
    batch_size: int = 8
    both_orders: bool = False
    seed: int = 0
    constrained: bool = True
    top_p: float = 1.0
    sampling: Sampling | None = None

    def __call__(self):
        constrain = constraint_for if self.constrained else None
        bb = load_judge_backbone(self.model_dir, device=self.device, encoders=self.encoders)
        j = Judge(
            bb,
            self.template,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            batch_size=self.batch_size,
            constrain=constrain,
            top_p=self.top_p,
        )
        return JudgeScorer(j, both_orders=self.both_orders, seed=self.seed, sampling=self.sampling)


class JudgeScorer:
    """Wraps `Judge.judge_pairs` / `judge_items` (and `group_scores`) per planned batch."""

    def __init__(self, judge: Judge, *, both_orders: bool = False, seed: int = 0, sampling: Sampling | None = None):
        self.judge = judge
        self.both_orders = both_orders
        self.seed = seed
        self.sampling = sampling

    def prepare(self, planned):
        return None  # the judge builds its own prompts

    def score(self, planned, prepared) -> list[dict]:
        torch.manual_seed(self.seed * 1_000_003 + planned.index)
        return judge_records(
            self.judge, planned.records, both_orders=self.both_orders, show_progress=False, sampling=self.sampling
        )


def judge_records(
    j: Judge,
    records: list[Record],
    *,
    both_orders: bool = False,
    show_progress: bool = True,
    sampling: Sampling | None = None,
) -> list[dict]:
    """Pairs judged pairwise, items pointwise, groups by all their pairs; lines in input order.
    With `sampling`, every judgement is K sampled ones that vote."""
    pairs = [i for i, r in enumerate(records) if isinstance(r, Pair)]
    items = [i for i, r in enumerate(records) if isinstance(r, Item)]
    out: dict[int, dict] = {}
    if pairs:
        for i, line in zip(
            pairs,
            j.judge_pairs(
                [records[i] for i in pairs], both_orders=both_orders, show_progress=show_progress, sampling=sampling
            ),
        ):
            out[i] = line
    if items:
        judged = j.judge_items([records[i] for i in items], show_progress=show_progress, sampling=sampling)
        for i, line in zip(items, judged):
            out[i] = line
    for i, r in enumerate(records):
        if isinstance(r, Group):
            out[i] = _group_line(r, group_scores(r, r.responses, j, both_orders=both_orders, sampling=sampling))
    return [out[i] for i in range(len(records))]


def _group_line(rec: Group, scores: dict) -> dict:
    """A judged group: rewards are win rates (mixed with Flex categories when present)."""
    return {**line_for(rec, scores["mixed"]), "win_rate": scores["win_rate"]}


def _judge_summary(lines, template: JudgeTemplate, model_dir, path, both_orders: bool, samples: int = 1) -> dict:
    """The judge's own figures over the pair lines of a scores file (read once, counted as it goes).

    With samples > 1: vote_accuracy (labelled response1/response2 pairs whose majority verdict is
    the preferred response; a tie verdict counts as wrong) and mean_agreement (the mean share of
    samples that agree with their pair's majority)."""
    n = own = contradictions = flex_valid = agree = 0
    labelled = right = 0
    agreement = 0.0
    for x in lines:
        if "verdict" not in x:
            continue
        n += 1
        agreement += x.get("agreement", 0.0)
        if x.get("preference") in ("response1", "response2"):
            labelled += 1
            right += x["verdict"] == x["preference"]
        if "text_verdict" in x:
            own += 1
            contradictions += bool(x["contradiction"])
        flex_valid += bool(x.get("flex_valid"))
        agree += bool(x.get("order_agreement"))
    own_template = trained_judge(model_dir)
    extra = {
        "judge": template.name,
        "model": str(model_dir) if model_dir else "embedded (zero-shot)",
        "trained_judge": own_template.name if own_template is not None else None,
        "input": str(path),
        "both_orders": both_orders,
        "text_verdict_share": own / n if n else None,
        "text_verdict_disagreement": contradictions / own if own else None,
    }
    if template.format == "flex" and n:
        extra["flex_valid_share"] = flex_valid / n
    if both_orders and n:
        extra["order_agreement"] = agree / n
    if samples != 1:
        extra["samples"] = samples
        extra["vote_accuracy"] = right / labelled if labelled else None
        extra["mean_agreement"] = agreement / n if n else None
    return extra
