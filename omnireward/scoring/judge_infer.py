"""Judge inference: a backbone writes critiques with a template; verdict probabilities per order,
sampled judgements that vote, pointwise scores.

A pair line's `margin` is p_response1 - p_response2 (with p_response2 = 1 - p_response1 -
p_tie), so the BT summary applies unchanged: its sign is the verdict without ties, and the
tie-calibrated accuracy calls a pair a tie when |margin| <= ε.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from omnireward.data.records import Item, Pair, length_hint
from omnireward.errors import ConfigError
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
from omnireward.scoring.progress import progress

LABELS3 = ("response1", "response2", "tie")


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
