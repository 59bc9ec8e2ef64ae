"""Score pairs with a generative judge (critique + verdict); group win-rates for RL loops.

A judge line's `margin` is p_response1 - p_response2 (with p_response2 = 1 - p_response1 -
p_tie), so the BT summary applies unchanged: its sign is the verdict without ties, and the
tie-calibrated accuracy calls a pair a tie when |margin| <= ε.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import torch

from omnireward.data.records import Group, Item, Pair, Record, Response, length_hint
from omnireward.errors import ConfigError, ModelError
from omnireward.judge.critique import critique
from omnireward.judge.templates import (
    LETTER_LABEL,
    SWAP_LABEL,
    JudgeTemplate,
    judge_conversation,
    load_template,
    pointwise_conversation,
)
from omnireward.judge.verdicts import flex_in_response_terms, parse_flex, parse_flex_pointwise, parse_verdict
from omnireward.objectives import JUDGE
from omnireward.scoring.progress import progress

JUDGES = ("omni", "think", "flex")
LABELS3 = ("response1", "response2", "tie")
DEFAULT_WEIGHTS = {"overall": 1.0, "semantic_alignment": 1.0, "quality": 1.0, "aesthetics": 1.0, "personalised": 1.0}


@dataclass(frozen=True)
class Sampling:
    """Judges that vote: `samples` sampled critiques per record (per order), majority verdict.

    Each record's samples are drawn together, as one batch of its own, from a generator seeded by
    `record_seed(seed, record id, order)`: a record's result depends on neither its neighbours
    nor the batch order, and a rerun writes the same lines.
    """

    samples: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.samples < 1:
            raise ConfigError(f"samples must be at least 1, got {self.samples}", field="samples")
        if self.temperature <= 0:
            raise ConfigError(f"sampled judgements need a temperature > 0, got {self.temperature}", field="temperature")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}", field="top_p")


def record_seed(seed: int, record_id: str, order: int = 0) -> int:
    """The sampling seed of one record's judgements in one order (0: as given, 1: swapped)."""
    digest = hashlib.sha256(f"{seed}\x00{record_id}\x00{order}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class Judge:
    """A backbone that writes critiques with a template, and how it generates.

    `constrain` (a callable `(backbone, template, records) -> (logits processor | None, tokens needed)`,
    e.g. `judge.grammar.constraint_for`) keeps critiques inside the template's output grammar; the
    critique length is then raised to what always suffices to finish inside it.
    """

    backbone: torch.nn.Module
    template: JudgeTemplate
    max_new_tokens: int = 256
    temperature: float = 0.0
    batch_size: int = 8
    pointwise: JudgeTemplate | None = None
    constrain: object = None
    top_p: float = 1.0

    def _critique(self, template: JudgeTemplate, convs, records, sampling: Sampling | None = None, generator=None):
        constraint, need = self.constrain(self.backbone, template, records) if self.constrain else (None, 0)
        return critique(
            self.backbone,
            template,
            convs,
            max_new_tokens=max(self.max_new_tokens, need),
            temperature=sampling.temperature if sampling else self.temperature,
            top_p=sampling.top_p if sampling else self.top_p,
            generator=generator,
            constraint=constraint,
        )

    @torch.no_grad()
    def _order(self, pairs: list[Pair], swap: bool, sampling: Sampling | None = None, generator=None) -> list[dict]:
        """One judging order for one batch: critique, probabilities and text verdict in response terms."""
        t = self.template
        c = self._critique(t, [judge_conversation(t, p, swap=swap) for p in pairs], pairs, sampling, generator)
        probs = c.probs.cpu()  # shown order: Response A, Response B, tie
        out = []
        for k, text in enumerate(c.texts):
            p = {lab: float(probs[k, i]) for i, lab in enumerate(LABELS3)}
            if swap:
                p = {SWAP_LABEL[lab]: v for lab, v in p.items()}
            letter = parse_verdict(text)
            tv = LETTER_LABEL[letter] if letter else None
            r = {"critique": text, "p": p, "text_verdict": SWAP_LABEL[tv] if (tv and swap) else tv}
            if t.format == "flex":
                flex = parse_flex(text)
                r["flex"] = flex_in_response_terms(flex, swap) if flex else None
            out.append(r)
        return out

    def judge_pairs(
        self,
        pairs: list[Pair],
        *,
        both_orders: bool = False,
        show_progress: bool = True,
        sampling: Sampling | None = None,
    ) -> list[dict]:
        """One result line per pair (input order); see `judge_file` for the fields. With `sampling`,
        each pair is judged `sampling.samples` times per order and the samples vote."""
        if sampling is not None:
            return self._vote_pairs(pairs, both_orders, sampling, show_progress)
        order = sorted(range(len(pairs)), key=lambda i: length_hint(pairs[i]))
        results: dict[int, dict] = {}
        with progress() as bar:
            task = bar.add_task(f"judging ({self.template.name})", total=len(pairs), visible=show_progress)
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                chunk = [pairs[i] for i in idx]
                runs = [self._order(chunk, False)] + ([self._order(chunk, True)] if both_orders else [])
                for k, i in enumerate(idx):
                    results[i] = _pair_line(pairs[i], [r[k] for r in runs])
                bar.advance(task, len(idx))
        return [results[i] for i in range(len(pairs))]

    def _vote_pairs(self, pairs: list[Pair], both_orders: bool, sampling: Sampling, show_progress: bool) -> list[dict]:
        lines = []
        with progress() as bar:
            task = bar.add_task(
                f"judging ({self.template.name}, {sampling.samples} samples)", total=len(pairs), visible=show_progress
            )
            for p in pairs:
                orders = []
                for o, swap in enumerate((False, True) if both_orders else (False,)):
                    g = torch.Generator().manual_seed(record_seed(sampling.seed, p.id, o))
                    orders.append(self._order([p] * sampling.samples, swap, sampling, g))
                lines.append(_vote_line(p, orders))
                bar.advance(task, 1)
        return lines

    @torch.no_grad()
    def judge_items(
        self, items: list[Item], *, show_progress: bool = True, sampling: Sampling | None = None
    ) -> list[dict]:
        """Pointwise: critique and expected 0-10 score (`reward`) per item. With `sampling`, the
        score is the mean over the item's sampled critiques (`scores` lists them)."""
        if sampling is not None:
            return [self._vote_item(it, sampling) for it in items]
        t = self.pointwise or load_template("flex_pointwise")
        lo, hi = t.scores
        values = torch.arange(lo, hi + 1, dtype=torch.float)
        lines: dict[int, dict] = {}
        order = sorted(range(len(items)), key=lambda i: length_hint(items[i]))
        with progress() as bar:
            task = bar.add_task("judging (pointwise)", total=len(items), visible=show_progress)
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                c = self._critique(t, [pointwise_conversation(t, items[i]) for i in idx], [items[i] for i in idx])
                probs = c.probs.cpu()
                for k, (i, text) in enumerate(zip(idx, c.texts)):
                    score = float((probs[k] * values).sum())
                    line = {"id": items[i].id, "task": items[i].task, "critique": text, "score": score, "reward": score}
                    flex = parse_flex_pointwise(text)
                    line["flex_valid"] = flex is not None
                    if flex:
                        line["flex"] = flex
                        line["text_score"] = flex["overall_score"]
                    lines[i] = line
                bar.advance(task, len(idx))
        return [lines[i] for i in range(len(items))]

    @torch.no_grad()
    def _vote_item(self, item: Item, sampling: Sampling) -> dict:
        t = self.pointwise or load_template("flex_pointwise")
        lo, hi = t.scores
        values = torch.arange(lo, hi + 1, dtype=torch.float)
        g = torch.Generator().manual_seed(record_seed(sampling.seed, item.id))
        k = sampling.samples
        c = self._critique(t, [pointwise_conversation(t, item)] * k, [item] * k, sampling, g)
        scores = [float((row * values).sum()) for row in c.probs.cpu()]
        mean = sum(scores) / k
        line = {"id": item.id, "task": item.task, "critique": c.texts[0], "score": mean, "reward": mean}
        flex = parse_flex_pointwise(c.texts[0])
        line["flex_valid"] = flex is not None
        if flex:
            line["flex"] = flex
            line["text_score"] = flex["overall_score"]
        line.update(samples=k, scores=scores, critiques=list(c.texts))
        return line


def majority(votes: dict[str, int], p: dict[str, float]) -> str:
    """The verdict most samples gave; a tie in votes goes to the tied verdict with the highest mean
    probability (response1 vs response2: the higher mean p_response1 or p_response2), then to the
    first of response1, response2, tie."""
    top = max(votes.values())
    tied = [lab for lab in LABELS3 if votes[lab] == top]
    return max(tied, key=lambda lab: (p[lab], -LABELS3.index(lab)))


def _own_verdict(run: dict) -> str:
    return max(LABELS3, key=lambda lab: run["p"][lab])


def _vote_line(rec: Pair, orders: list[list[dict]]) -> dict:
    """K sampled judgements per order: majority verdict over all of them, mean probabilities.

    The line's critique (and text verdict, Flex fields, critique_swapped) is that of the first
    sample in each order that voted with the majority (the first sample when none did).
    """
    runs = [r for order in orders for r in order]
    votes = {lab: 0 for lab in LABELS3}
    for r in runs:
        votes[_own_verdict(r)] += 1
    p = {lab: sum(r["p"][lab] for r in runs) / len(runs) for lab in LABELS3}
    verdict = majority(votes, p)
    shown = [next((r for r in order if _own_verdict(r) == verdict), order[0]) for order in orders]
    line = _pair_line(rec, shown)
    line.update(
        verdict=verdict,
        p_response1=p["response1"],
        p_response2=p["response2"],
        p_tie=p["tie"],
        margin=p["response1"] - p["response2"],
        samples=len(orders[0]),
        votes=votes,
        agreement=votes[verdict] / len(runs),
        critiques=[r["critique"] for r in orders[0]],
    )
    if len(orders) > 1:
        by_order = []
        for order in orders:
            v = {lab: sum(_own_verdict(r) == lab for r in order) for lab in LABELS3}
            q = {lab: sum(r["p"][lab] for r in order) / len(order) for lab in LABELS3}
            by_order.append((majority(v, q), q["response1"]))
        line["p_response1_by_order"] = [q for _, q in by_order]
        line["order_agreement"] = len({v for v, _ in by_order}) == 1
        line["critiques_swapped"] = [r["critique"] for r in orders[1]]
    return line


def _pair_line(rec: Pair, runs: list[dict]) -> dict:
    """Average the orders' probabilities; the verdict is the most probable of the three."""
    p = {lab: sum(r["p"][lab] for r in runs) / len(runs) for lab in LABELS3}
    verdict = max(LABELS3, key=lambda lab: p[lab])
    line = {
        "id": rec.id,
        "task": rec.task,
        "critique": runs[0]["critique"],
        "verdict": verdict,
        "p_response1": p["response1"],
        "p_response2": p["response2"],
        "p_tie": p["tie"],
        "margin": p["response1"] - p["response2"],
    }
    if rec.preference is not None:
        line["preference"] = rec.preference
    own = [r["text_verdict"] for r in runs if r["text_verdict"] is not None]
    if own:
        line["text_verdict"] = runs[0]["text_verdict"] if runs[0]["text_verdict"] else own[0]
        # A critique contradicts when its written verdict differs from what its own order's
        # probabilities say.
        line["contradiction"] = any(
            r["text_verdict"] is not None and r["text_verdict"] != max(LABELS3, key=lambda lab: r["p"][lab])
            for r in runs
        )
    if "flex" in runs[0]:
        line["flex_valid"] = runs[0]["flex"] is not None
        if runs[0]["flex"]:
            line["flex"] = runs[0]["flex"]
            line["dimension_scores"] = {
                f"{c}/{d}": [v["score1"], v["score2"]]
                for c, cat in runs[0]["flex"]["categories"].items()
                for d, v in cat["dimensions"].items()
            }
    if len(runs) > 1:
        line["critique_swapped"] = runs[1]["critique"]
        line["p_response1_by_order"] = [r["p"]["response1"] for r in runs]
        line["order_agreement"] = len({max(LABELS3, key=lambda lab: r["p"][lab]) for r in runs}) == 1
        if "flex" in runs[1] and runs[1]["flex"]:
            line["flex_swapped"] = runs[1]["flex"]
    return line


# ---- loading -----------------------------------------------------------------------------------
def load_judge_backbone(model_dir: str | Path | None, *, device: str = "auto", encoders=()):
    """The backbone that judges: a trained model folder (any objective), an HF checkpoint (folder or
    hub id: causal LMs and the multimodal families of backbone=hf), or, with no model, the embedded
    instruct LM (text only unless `encoders` are given)."""
    from omnireward import model_folder
    from omnireward.backbones.build import build_modular
    from omnireward.scoring.load import pick_device

    if model_dir is None:
        bb = build_modular(lm="embedded", encoders=list(encoders))
    elif model_folder.is_model_folder(model_dir):
        bb = model_folder.load(model_dir)[0].backbone
    elif Path(model_dir).exists() and not (Path(model_dir) / "config.json").exists():
        raise ModelError(f"{model_dir} is neither an omnireward model folder nor a Hugging Face model folder")
    elif encoders:  # a causal LM with the embedded encoders in front of it
        bb = build_modular(lm=str(model_dir), encoders=list(encoders))
    else:
        from omnireward.backbones.hf import build_hf

        bb = build_hf(str(model_dir))
    return bb.to(pick_device(device)).eval()


def trained_judge(model_dir: str | Path | None) -> JudgeTemplate | None:
    """The judge template a judge folder (objective: judge) was trained with; None for other folders and LMs."""
    from omnireward import model_folder

    if model_dir is None or not model_folder.is_model_folder(model_dir):
        return None
    folder = model_folder.open_folder(model_dir)
    if folder.objective is not JUDGE:
        return None
    cfg = folder.cfg
    return model_folder.judge_template_of(cfg) or load_template(cfg.get("model", {}).get("judge", "omni"))


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
    from omnireward.scoring.identity import run_identity
    from omnireward.scoring.stream import score_stream

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
    template = _template(judge, model_dir)
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
        path,
        out,
        factory,
        run_identity(model_dir, path, options),
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
        from omnireward.scoring.output import ScoresFile

        sf = ScoresFile(out)
        summary.update(_judge_summary(sf.lines(), template, model_dir, path, both_orders, samples))
        sf.summary_path.write_text(json.dumps(summary, indent=2))
    return summary


def _template(judge, model_dir) -> JudgeTemplate:
    if isinstance(judge, JudgeTemplate):
        return judge
    if judge is None:
        own = trained_judge(model_dir)
        return own if own is not None else load_template("omni")
    if judge not in JUDGES and not str(judge).endswith((".yaml", ".yml")):
        raise ConfigError(f"unknown judge {judge!r} (expected one of {', '.join(JUDGES)})", field="--judge")
    return load_template(judge)


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
        constrain = None
        if self.constrained:
            from omnireward.judge.grammar import constraint_for

            constrain = constraint_for
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
    from omnireward.scoring.batch import line_for

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


# ---- group scoring for RL ----------------------------------------------------------------------
def group_scores(
    record: Record,
    candidates: list[Response],
    judge: Judge,
    *,
    weights: dict | None = None,
    both_orders: bool = True,
    sampling: Sampling | None = None,
) -> dict:
    """Judge every pair of candidates for one prompt; per-candidate win-rates, overall and per
    Flex category, and their mix.

    A pair gives candidate i the credit p_response1 + p_tie/2 (j the rest); a Flex category
    gives 1, 0 or 1/2 by its winner (averaged over orders). `weights` maps "overall" and
    category names to weights (default DEFAULT_WEIGHTS); a category a candidate was never judged
    on counts with its overall win-rate, so without Flex `mixed == win_rate`. With `sampling`, each
    pair is judged by sampled judgements that vote (its p_* are their means).
    """
    n = len(candidates)
    if n < 2:
        raise ConfigError("group scoring needs at least two candidates", field="candidates")
    index = list(combinations(range(n), 2))
    pairs = [
        Pair(
            id=f"{record.id}:{i}-{k}",
            task=record.task,
            prompt=record.prompt,
            response1=candidates[i],
            response2=candidates[k],
            criteria=record.criteria,
            prompt_media=list(record.prompt_media),
        )
        for i, k in index
    ]
    more = {"sampling": sampling} if sampling is not None else {}
    lines = judge.judge_pairs(pairs, both_orders=both_orders, show_progress=False, **more)
    wins = [0.0] * n
    cat_credit: dict[str, list[float]] = {}
    cat_count: dict[str, list[int]] = {}
    credit = {"response1": 1.0, "response2": 0.0, "tie": 0.5}
    for (i, k), line in zip(index, lines):
        c = line["p_response1"] + line["p_tie"] / 2
        wins[i] += c
        wins[k] += 1 - c
        flexes = [f for f in (line.get("flex"), line.get("flex_swapped")) if f]
        names = {name for f in flexes for name in f["categories"]}
        for name in names:
            votes = [credit[f["categories"][name]["winner"]] for f in flexes if name in f["categories"]]
            v = sum(votes) / len(votes)
            cat_credit.setdefault(name, [0.0] * n)
            cat_count.setdefault(name, [0] * n)
            cat_credit[name][i] += v
            cat_credit[name][k] += 1 - v
            cat_count[name][i] += 1
            cat_count[name][k] += 1
    win_rate = [w / (n - 1) for w in wins]
    per_category = {
        name: [cat_credit[name][m] / cat_count[name][m] if cat_count[name][m] else None for m in range(n)]
        for name in cat_credit
    }
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    total = sum(w.values())
    if total <= 0:
        raise ConfigError("group score weights must have a positive sum", field="weights")
    mixed = []
    for m in range(n):
        s = w.get("overall", 0.0) * win_rate[m]
        for name, wt in w.items():
            if name == "overall":
                continue
            rate = per_category.get(name, [None] * n)[m]
            s += wt * (win_rate[m] if rate is None else rate)
        mixed.append(s / total)
    return {"win_rate": win_rate, "per_category": per_category, "mixed": mixed, "pairs": lines}
