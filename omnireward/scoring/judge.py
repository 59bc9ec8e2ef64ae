"""Score pairs with a generative judge (critique + verdict); group win-rates for RL loops.

A judge line's `margin` is p_response1 - p_response2 (with p_response2 = 1 - p_response1 -
p_tie), so the BT summary applies unchanged: its sign is the verdict without ties, and the
tie-calibrated accuracy calls a pair a tie when |margin| <= ε.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import torch

from omnireward.data.records import Group, Item, Pair, Record, Response
from omnireward.errors import ConfigError, ModelError
from omnireward.heads.judge import (
    LETTER_LABEL,
    SWAP_LABEL,
    JudgeTemplate,
    completion_mask,
    decode,
    flex_in_response_terms,
    judge_conversation,
    load_template,
    parse_flex,
    parse_flex_pointwise,
    parse_verdict,
    pointwise_conversation,
    prompt_batch,
    sample,
    score_probs,
    strip_end,
    verdict_probs,
)
from omnireward.prompts import length_hint
from omnireward.scoring.progress import progress

JUDGES = ("omni", "think", "flex")
LABELS3 = ("response1", "response2", "tie")
DEFAULT_WEIGHTS = {"overall": 1.0, "semantic_alignment": 1.0, "quality": 1.0, "aesthetics": 1.0,
                   "personalised": 1.0}


@dataclass
class Judge:
    """A backbone that writes critiques with a template, and how it generates."""

    backbone: torch.nn.Module
    template: JudgeTemplate
    max_new_tokens: int = 256
    temperature: float = 0.0
    batch_size: int = 8
    pointwise: JudgeTemplate | None = None

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @torch.no_grad()
    def _order(self, pairs: list[Pair], swap: bool) -> list[dict]:
        """One judging order for one batch: critique, probabilities and text verdict in response terms."""
        bb, t = self.backbone, self.template
        batch = prompt_batch(bb, [judge_conversation(t, p, swap=swap) for p in pairs]).to(self.device)
        ids = sample(bb, batch, max_new_tokens=self.max_new_tokens, temperature=self.temperature)
        crit = strip_end(ids, completion_mask(ids, bb.tokenizer.eos_token_id), bb.tokenizer.eos_token_id)
        texts = decode(bb.tokenizer, crit)
        probs = verdict_probs(bb, t, batch, crit).cpu()  # shown order: Response A, Response B, tie
        out = []
        for k, text in enumerate(texts):
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

    def judge_pairs(self, pairs: list[Pair], *, both_orders: bool = False, show_progress: bool = True) -> list[dict]:
        """One result line per pair (input order); see `judge_file` for the fields."""
        order = sorted(range(len(pairs)), key=lambda i: length_hint(pairs[i]))
        results: dict[int, dict] = {}
        with progress() as bar:
            task = bar.add_task(f"judging ({self.template.name})", total=len(pairs), visible=show_progress)
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                chunk = [pairs[i] for i in idx]
                runs = [self._order(chunk, False)] + ([self._order(chunk, True)] if both_orders else [])
                for k, i in enumerate(idx):
                    results[i] = _pair_line(pairs[i], [r[k] for r in runs])
                bar.advance(task, len(idx))
        return [results[i] for i in range(len(pairs))]

    @torch.no_grad()
    def judge_items(self, items: list[Item], *, show_progress: bool = True) -> list[dict]:
        """Pointwise: critique and expected 0-10 score (`reward`) per item."""
        t = self.pointwise or load_template("flex_pointwise")
        bb = self.backbone
        lo, hi = t.scores
        values = torch.arange(lo, hi + 1, dtype=torch.float)
        lines: dict[int, dict] = {}
        order = sorted(range(len(items)), key=lambda i: length_hint(items[i]))
        with progress() as bar:
            task = bar.add_task("judging (pointwise)", total=len(items), visible=show_progress)
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                batch = prompt_batch(bb, [pointwise_conversation(t, items[i]) for i in idx]).to(self.device)
                ids = sample(bb, batch, max_new_tokens=self.max_new_tokens, temperature=self.temperature)
                crit = strip_end(ids, completion_mask(ids, bb.tokenizer.eos_token_id), bb.tokenizer.eos_token_id)
                probs = score_probs(bb, t, batch, crit).cpu()
                for k, (i, text) in enumerate(zip(idx, decode(bb.tokenizer, crit))):
                    score = float((probs[k] * values).sum())
                    line = {"id": items[i].id, "task": items[i].task, "critique": text, "score": score,
                            "reward": score}
                    flex = parse_flex_pointwise(text)
                    line["flex_valid"] = flex is not None
                    if flex:
                        line["flex"] = flex
                        line["text_score"] = flex["overall_score"]
                    lines[i] = line
                bar.advance(task, len(idx))
        return [lines[i] for i in range(len(items))]


def _pair_line(rec: Pair, runs: list[dict]) -> dict:
    """Average the orders' probabilities; the verdict is the most probable of the three."""
    p = {lab: sum(r["p"][lab] for r in runs) / len(runs) for lab in LABELS3}
    verdict = max(LABELS3, key=lambda lab: p[lab])
    line = {"id": rec.id, "task": rec.task, "critique": runs[0]["critique"], "verdict": verdict,
            "p_response1": p["response1"], "p_response2": p["response2"], "p_tie": p["tie"],
            "margin": p["response1"] - p["response2"]}
    if rec.preference is not None:
        line["preference"] = rec.preference
    own = [r["text_verdict"] for r in runs if r["text_verdict"] is not None]
    if own:
        line["text_verdict"] = runs[0]["text_verdict"] if runs[0]["text_verdict"] else own[0]
        # A critique contradicts when its written verdict differs from what its own order's
        # probabilities say.
        line["contradiction"] = any(r["text_verdict"] is not None and
                                    r["text_verdict"] != max(LABELS3, key=lambda lab: r["p"][lab]) for r in runs)
    if "flex" in runs[0]:
        line["flex_valid"] = runs[0]["flex"] is not None
        if runs[0]["flex"]:
            line["flex"] = runs[0]["flex"]
            line["dimension_scores"] = {f"{c}/{d}": [v["score1"], v["score2"]]
                                        for c, cat in runs[0]["flex"]["categories"].items()
                                        for d, v in cat["dimensions"].items()}
    if len(runs) > 1:
        line["critique_swapped"] = runs[1]["critique"]
        line["p_response1_by_order"] = [r["p"]["response1"] for r in runs]
        line["order_agreement"] = len({max(LABELS3, key=lambda lab: r["p"][lab]) for r in runs}) == 1
        if "flex" in runs[1] and runs[1]["flex"]:
            line["flex_swapped"] = runs[1]["flex"]
    return line


# ---- loading -----------------------------------------------------------------------------------
def load_judge_backbone(model_dir: str | Path | None, *, device: str = "auto", encoders=()):
    """The backbone that judges: a trained model folder, an HF causal LM (folder or hub id), or,
    with no model, the embedded instruct LM (text only unless `encoders` are given)."""
    from omnireward.backbones.build import build_modular
    from omnireward.reward_model import CONFIG_NAME, RewardModel
    from omnireward.scoring.load import pick_device

    if model_dir is None:
        bb = build_modular(lm="embedded", encoders=list(encoders))
    elif (Path(model_dir) / CONFIG_NAME).exists():
        bb = RewardModel.from_pretrained(model_dir)[0].backbone
    elif Path(model_dir).exists() and not (Path(model_dir) / "config.json").exists():
        raise ModelError(f"{model_dir} is neither an omnireward model folder nor a Hugging Face LM folder")
    else:
        bb = build_modular(lm=str(model_dir), encoders=list(encoders))
    return bb.to(pick_device(device)).eval()


def trained_judge(model_dir: str | Path | None) -> str | None:
    """The judge template a `model=r1` folder was trained with (None for BT/joint folders and LMs)."""
    from omegaconf import OmegaConf

    from omnireward.reward_model import CONFIG_NAME

    cfg_path = Path(model_dir) / CONFIG_NAME if model_dir is not None else None
    if cfg_path is None or not cfg_path.exists():
        return None
    model = OmegaConf.load(cfg_path).get("model", {})
    return model.get("judge", "omni") if model.get("name") == "r1" else None


def judge_file(path: str | Path, model_dir: str | Path | None, out: str | Path, *, judge: str = "omni",
               batch_size: int = 8, max_new_tokens: int = 256, both_orders: bool = False, device: str = "auto",
               seed: int = 0, temperature: float = 0.0, encoders=(), media_root: str | None = None,
               allow_outside_root: bool = False, fmt: str = "auto", overwrite: bool = False,
               on_bad_record: str = "reject", engine: str = "local", ray=None, show_progress: bool = True) -> dict:
    """`omnireward score --judge`: a critique and verdict for every pair, plus the accuracy summary.

    Per pair line: id, task, critique, verdict (response1|response2|tie), p_response1,
    p_response2, p_tie, margin (= p_response1 - p_response2), preference when known;
    text_verdict and contradiction when the critique wrote its own verdict; Flex: flex_valid,
    flex (categories with per-dimension scores, normalised to sum to 10) and dimension_scores;
    both orders: critique_swapped, p_response1_by_order, order_agreement. Pointwise items get
    critique, score and reward (expected 0-10 score). Groups get rewards (each response's
    win rate over all pairs of the group), ranking and best. The summary adds judge,
    text_verdict_disagreement (share of critiques with their own verdict that contradict the
    probabilities), text_verdict_share, and flex_valid_share / order_agreement when relevant.

    Streamed and resumable like BT scoring (scoring/stream.py); each batch samples with the seed
    `seed` and its batch number, so a resumed run writes what an uninterrupted one would.
    """
    from omnireward.scoring.identity import run_identity
    from omnireward.scoring.stream import score_stream

    if judge not in JUDGES and not str(judge).endswith((".yaml", ".yml")):
        raise ConfigError(f"unknown judge {judge!r} (expected one of {', '.join(JUDGES)})", field="--judge")
    template = load_template(judge)
    factory = JudgeModel(str(model_dir) if model_dir is not None else None, judge, device=device,
                         encoders=tuple(encoders), max_new_tokens=max_new_tokens, temperature=temperature,
                         batch_size=batch_size, both_orders=both_orders, seed=seed)
    options = {"judge": judge, "template": template.name, "max_new_tokens": max_new_tokens,
               "both_orders": both_orders, "seed": seed, "temperature": temperature, "encoders": list(encoders),
               "format": fmt, "media_root": str(Path(media_root).resolve()) if media_root else None,
               "allow_outside_root": allow_outside_root, "on_bad_record": on_bad_record}
    summary = score_stream(path, out, factory, run_identity(model_dir, path, options), batch_size=batch_size,
                           fmt=fmt, media_root=media_root, allow_outside_root=allow_outside_root,
                           overwrite=overwrite, workers=0, on_bad_record=on_bad_record, engine=engine, ray=ray,
                           show_progress=show_progress, description=f"judging ({template.name})")
    if "judge" not in summary:  # a fresh finish: add the judge's own figures, read from the file
        from omnireward.scoring.output import ScoresFile

        sf = ScoresFile(out)
        summary.update(_judge_summary(sf.lines(), template, model_dir, path, both_orders))
        sf.summary_path.write_text(json.dumps(summary, indent=2))
    return summary


@dataclass
class JudgeModel:
    """Builds the judge scorer: loads the backbone (here, or once per Ray actor)."""

    model_dir: str | None
    judge: str = "omni"
    device: str = "auto"
    encoders: tuple = ()
    max_new_tokens: int = 256
    temperature: float = 0.0
    batch_size: int = 8
    both_orders: bool = False
    seed: int = 0

    def __call__(self):
        bb = load_judge_backbone(self.model_dir, device=self.device, encoders=self.encoders)
        j = Judge(bb, load_template(self.judge), max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                  batch_size=self.batch_size)
        return JudgeScorer(j, both_orders=self.both_orders, seed=self.seed)


class JudgeScorer:
    """Wraps `Judge.judge_pairs` / `judge_items` (and `group_scores`) per planned batch."""

    def __init__(self, judge: Judge, *, both_orders: bool = False, seed: int = 0):
        self.judge = judge
        self.both_orders = both_orders
        self.seed = seed

    def prepare(self, planned):
        return None  # the judge builds its own prompts

    def score(self, planned, prepared) -> list[dict]:
        torch.manual_seed(self.seed * 1_000_003 + planned.index)
        return judge_records(self.judge, planned.records, both_orders=self.both_orders, show_progress=False)


def judge_records(j: Judge, records: list[Record], *, both_orders: bool = False,
                  show_progress: bool = True) -> list[dict]:
    """Pairs judged pairwise, items pointwise, groups by all their pairs; lines in input order."""
    pairs = [i for i, r in enumerate(records) if isinstance(r, Pair)]
    items = [i for i, r in enumerate(records) if isinstance(r, Item)]
    out: dict[int, dict] = {}
    if pairs:
        for i, line in zip(pairs, j.judge_pairs([records[i] for i in pairs], both_orders=both_orders,
                                                show_progress=show_progress)):
            out[i] = line
    if items:
        for i, line in zip(items, j.judge_items([records[i] for i in items], show_progress=show_progress)):
            out[i] = line
    for i, r in enumerate(records):
        if isinstance(r, Group):
            out[i] = _group_line(r, group_scores(r, r.responses, j, both_orders=both_orders))
    return [out[i] for i in range(len(records))]


def _group_line(rec: Group, scores: dict) -> dict:
    """A judged group: rewards are win rates (mixed with Flex categories when present)."""
    from omnireward.scoring.batch import line_for

    return {**line_for(rec, scores["mixed"]), "win_rate": scores["win_rate"]}


def _judge_summary(lines, template: JudgeTemplate, model_dir, path, both_orders: bool) -> dict:
    """The judge's own figures over the pair lines of a scores file (read once, counted as it goes)."""
    n = own = contradictions = flex_valid = agree = 0
    for x in lines:
        if "verdict" not in x:
            continue
        n += 1
        if "text_verdict" in x:
            own += 1
            contradictions += bool(x["contradiction"])
        flex_valid += bool(x.get("flex_valid"))
        agree += bool(x.get("order_agreement"))
    extra = {"judge": template.name, "model": str(model_dir) if model_dir else "embedded (zero-shot)",
             "trained_judge": trained_judge(model_dir),
             "input": str(path), "both_orders": both_orders,
             "text_verdict_share": own / n if n else None,
             "text_verdict_disagreement": contradictions / own if own else None}
    if template.format == "flex" and n:
        extra["flex_valid_share"] = flex_valid / n
    if both_orders and n:
        extra["order_agreement"] = agree / n
    return extra


# ---- group scoring for RL ----------------------------------------------------------------------
def group_scores(record: Record, candidates: list[Response], judge: Judge, *, weights: dict | None = None,
                 both_orders: bool = True) -> dict:
    """Judge every pair of candidates for one prompt; per-candidate win-rates, overall and per
    Flex category, and their mix.

    A pair gives candidate i the credit p_response1 + p_tie/2 (j the rest); a Flex category
    gives 1, 0 or 1/2 by its winner (averaged over orders). `weights` maps "overall" and
    category names to weights (default DEFAULT_WEIGHTS); a category a candidate was never judged
    on counts with its overall win-rate, so without Flex `mixed == win_rate`.
    """
    n = len(candidates)
    if n < 2:
        raise ConfigError("group scoring needs at least two candidates", field="candidates")
    index = list(combinations(range(n), 2))
    pairs = [Pair(id=f"{record.id}:{i}-{k}", task=record.task, prompt=record.prompt, response1=candidates[i],
                  response2=candidates[k], criteria=record.criteria, prompt_media=list(record.prompt_media))
             for i, k in index]
    lines = judge.judge_pairs(pairs, both_orders=both_orders, show_progress=False)
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
    per_category = {name: [cat_credit[name][m] / cat_count[name][m] if cat_count[name][m] else None
                           for m in range(n)] for name in cat_credit}
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
