"""A generative judge behind the shared batcher: what `omnireward serve` runs for a judge folder
(objective: judge) or `--judge TEMPLATE` on an LM.

Two kinds of work share the judge's batches: chat completions (`ChatWork`: an OpenAI-format
conversation, answered `n` times) and native judging (`PairWork`: a pair, or an item for a
pointwise template, judged as `omnireward score` judges it). One request's work is one batcher
item, so its `n` choices (or a pair's two orders) always run in the same forward pass.

A chat answer is the critique followed by the verdict, written in the template's output form
whatever the critique wrote: `[[A]]` after the template's verdict prefix (brackets), `<think>…
</think><answer>A</answer>` (think), or the Flex JSON, generated inside its grammar (flex,
flex_pointwise). The written letter is the most probable option where the verdict is read (the
same reading `omnireward score --judge` reports), so `judge.verdicts.parse_verdict` (and
`format_ok`) accept every answer.
"""

from __future__ import annotations

import re
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import torch

from omnireward import model_folder
from omnireward.judge.critique import critique
from omnireward.judge.grammar import constraint_for
from omnireward.judge.templates import LABELS, JudgeTemplate
from omnireward.judge.verdicts import format_ok, parse_verdict
from omnireward.scoring.judge import Judge, judge_records, load_judge_backbone, majority, template_for
from omnireward.scoring.load import pick_device
from omnireward.serving.batcher import Batcher
from omnireward.serving.judge_routes import judge_routes
from omnireward.serving.judge_work import ChatWork, PairWork, work_cost  # noqa: F401 (PairWork re-exported)
from omnireward.serving.media import MediaStore
from omnireward.serving.scale import RewardScale
from omnireward.serving.service import BatchSettings

LETTERS = {"response1": "A", "response2": "B", "tie": "C"}


# ---- answers in the template's output form --------------------------------------------------------
_THINK_TAGS = re.compile(r"</?think>")


def compose_answer(t: JudgeTemplate, critique: str, letter: str) -> str:
    """The critique and the verdict `letter` (A|B|C) as one text in the template's output form.

    Flex answers are the JSON the grammar produced (their own winner stays). A brackets or think
    critique is cut where it began a verdict of its own; the verdict is then written once, at the end.
    """
    if t.format in ("flex", "flex_pointwise"):
        return critique.strip()
    body = critique
    at = body.find(t.verdict_anchor) if t.verdict_anchor else -1
    if at >= 0:
        body = body[:at]
    if t.format == "think":
        inner = _THINK_TAGS.sub("", body.split("<answer>")[0]).strip() or "-"
        return f"<think>{inner}</think><answer>{letter}</answer>"
    body = re.sub(r"\[\[|\]\]", "", body).rstrip()
    text = f"{body}{t.verdict_prefix}{letter}{t.verdict_suffix}".strip()
    if not format_ok(t, text):  # an empty critique: the verdict alone, named
        prefix = t.verdict_prefix.strip()
        named = prefix if re.search(r"[^\W_]", prefix) else "Verdict: " + prefix
        text = f"{named}{letter}{t.verdict_suffix}"
    return text


# ---- the runner ---------------------------------------------------------------------------------
class JudgeRunner:
    """Runs a batch of ChatWork / PairWork items on one judge replica."""

    def __init__(self, judge):
        self.judge = judge

    def __call__(self, items: list) -> list:
        out: list = [None] * len(items)
        pairs = defaultdict(list)
        chats = defaultdict(list)
        for i, w in enumerate(items):
            if isinstance(w, PairWork):
                pairs[(w.both_orders, w.sampling)].append(i)
            else:
                # Seeded requests run alone, so that the same request and seed give the same answer
                # whatever else is waiting; unseeded ones share batches by sampling settings.
                key = (w.max_tokens, w.temperature, w.top_p, w.seed, i if w.seed is not None else None)
                chats[key].append(i)
        for (both, sampling), idx in pairs.items():
            for i, line in zip(idx, self._judge([items[i].record for i in idx], both, sampling)):
                out[i] = line
        for (max_tokens, temperature, top_p, seed, _), idx in chats.items():
            for i, answer in zip(idx, self._chat([items[i] for i in idx], max_tokens, temperature, top_p, seed)):
                out[i] = answer
        return out

    def _judge(self, records: list, both_orders: bool, sampling=None) -> list[dict]:
        return judge_records(self.judge, records, both_orders=both_orders, show_progress=False, sampling=sampling)

    @torch.no_grad()
    def _chat(
        self, works: list[ChatWork], max_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[dict]:
        j = self.judge
        t = j.template
        convs = [w.conversation for w in works for _ in range(w.n)]
        rows = [SimpleNamespace(criteria=None) for _ in convs]  # a chat request names no criteria
        constraint, need = j.constrain(j.backbone, t, rows) if j.constrain else (None, 0)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        c = critique(
            j.backbone,
            t,
            convs,
            max_new_tokens=max(max_tokens, need),
            temperature=temperature,
            top_p=top_p,
            generator=generator,
            constraint=constraint,
        )
        probs = c.probs.float().cpu()
        prompt_tokens = c.batch.tensors["attention_mask"].sum(-1).tolist()
        eos = j.backbone.tokenizer.eos_token_id
        ended = (c.ids == eos).any(-1).tolist()
        choices = []
        for k, text in enumerate(c.texts):
            if t.kind == "pairwise":
                p = {LETTERS[lab]: float(probs[k, n]) for n, lab in enumerate(LABELS) if lab in t.options}
                answer = compose_answer(t, text, max(p, key=p.get))
                # Flex JSON keeps its own overall winner; `verdict` is always the letter the text names.
                choice = {"text": answer, "verdict": parse_verdict(answer) or max(p, key=p.get), "verdict_probs": p}
            else:
                lo, hi = t.scores
                score = float((probs[k] * torch.arange(lo, hi + 1, dtype=torch.float)).sum())
                choice = {"text": compose_answer(t, text, ""), "score": score}
            choice["finish_reason"] = "stop" if ended[k] else "length"
            choice["completion_tokens"] = len(c.tokens[k])
            choices.append(choice)
        answers, at = [], 0
        for w in works:
            answer = {"choices": choices[at : at + w.n], "prompt_tokens": int(prompt_tokens[at])}
            if w.n > 1:
                answer["vote"] = chat_vote(answer["choices"])
            answers.append(answer)
            at += w.n
        return answers


def chat_vote(choices: list[dict]) -> dict:
    """The n choices' vote: pairwise, the majority verdict letter (a tie in votes goes to the higher
    mean probability, as `omnireward score --samples` decides), votes per letter, the share of
    choices that agree with it and the mean verdict probabilities; pointwise, the mean score."""
    n = len(choices)
    if "verdict_probs" not in choices[0]:
        return {"n": n, "score": sum(c["score"] for c in choices) / n}
    letters = list(choices[0]["verdict_probs"])
    votes = {x: sum(c["verdict"] == x for c in choices) for x in letters}
    mean = {x: sum(c["verdict_probs"][x] for c in choices) / n for x in letters}
    # A letter the template does not offer gets no votes and probability 0, so it never wins.
    label = majority(
        {lab: votes.get(x, 0) for lab, x in LETTERS.items()}, {lab: mean.get(x, 0.0) for lab, x in LETTERS.items()}
    )
    verdict = LETTERS[label]
    return {"n": n, "verdict": verdict, "votes": votes, "agreement": votes[verdict] / n, "verdict_probs": mean}


# ---- the service --------------------------------------------------------------------------------
class JudgeService:
    """Judge replicas, a shared batcher, the media store, and what /info reports.

    Has what the application's routes read from a RewardService (`scale`, `default_system`,
    `stats`, `info_fields`, `media`, `submit`, `info`, `close`) plus `routes`, the judge's own.
    """

    def __init__(
        self,
        judges: list,
        *,
        batching: BatchSettings,
        media: MediaStore | None = None,
        info: dict | None = None,
        max_new_tokens: int = 256,
    ):
        self.judges = judges
        self.models = judges  # replicas, as /info and the CLI count them
        self.template: JudgeTemplate = judges[0].template
        self.batching = batching.check()
        self.max_new_tokens = max_new_tokens
        self.stats = None
        self.scale = RewardScale()
        self.default_system = None
        self.media = media or MediaStore(allow_outside_root=True)
        self.info_fields = info or {}
        self.routes = judge_routes(max_new_tokens, self.template.kind)
        self.batcher = Batcher(
            [JudgeRunner(j) for j in judges],
            max_batch_size=batching.max_batch_size,
            batch_timeout=batching.batch_timeout,
            max_queue=batching.max_queue,
            cost=work_cost,
            name="judge",
        )

    @classmethod
    def load(
        cls,
        model_dir: str | Path | None,
        *,
        judge: str | JudgeTemplate | None = None,
        devices: str = "auto",
        batching: BatchSettings | None = None,
        media: MediaStore | None = None,
        max_new_tokens: int = 256,
        constrained: bool = True,
        encoders=(),
    ) -> JudgeService:
        """`workers_per_device` judge replicas on each of the comma-separated `devices`: a judge folder
        with its own template (or `judge`), a model folder or HF LM with `judge`, or with no model the
        embedded instruct LM."""
        batching = (batching or BatchSettings()).check()
        template = template_for(judge, model_dir)
        constrain = None
        if constrained:
            constrain = constraint_for
        names = [d.strip() for d in devices.split(",") if d.strip()] or ["auto"]
        judges, where = [], []
        for d in names:
            for _ in range(batching.workers_per_device):
                bb = load_judge_backbone(
                    str(model_dir) if model_dir is not None else None, device=d, encoders=tuple(encoders)
                )
                judges.append(
                    Judge(
                        bb,
                        template,
                        max_new_tokens=max_new_tokens,
                        temperature=0.0,
                        batch_size=batching.max_batch_size,
                        constrain=constrain,
                    )
                )
                where.append(str(pick_device(d)))
        info = {
            "model": str(model_dir) if model_dir is not None else "embedded (zero-shot)",
            "objective": {
                "objective": "judge",
                "template": template.name,
                "kind": template.kind,
                "format": template.format,
            },
            "devices": where,
            "constrained": constrained,
        }
        return cls(judges, batching=batching, media=media, info=info, max_new_tokens=max_new_tokens)

    def submit(self, works: list) -> Future:
        """A future of one answer per work item (QueueFull when the queue is full)."""
        return self.batcher.submit(works)

    def info(self) -> dict:
        t = self.template
        return {
            **self.info_fields,
            "modalities": ["text", *self.judges[0].backbone.modalities],
            "judge": {
                "template": t.name,
                "kind": t.kind,
                "format": t.format,
                "options": dict(t.options) if t.kind == "pairwise" else None,
                "max_new_tokens": self.max_new_tokens,
            },
            "batching": {**asdict(self.batching), "replicas": len(self.judges)},
            "batches": self.batcher.stats.snapshot(),
        }

    def close(self) -> None:
        self.batcher.close()
        self.media.close()


def is_judge(model_dir) -> bool:
    """Whether `model_dir` is a judge folder (objective: judge)."""
    return (
        model_dir is not None
        and model_folder.is_model_folder(model_dir)
        and not model_folder.open_folder(model_dir).objective.reward_head
    )
