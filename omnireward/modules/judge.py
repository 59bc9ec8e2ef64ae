"""LightningModule for the R1-style generative judge: SFT on critiques, then GRPO with rule rewards.

GRPO (DeepSeekMath): for each prompt G completions are sampled; each gets a rule reward
(format + verdict correctness); advantages are the rewards normalised within their group; the
loss is the clipped-ratio policy objective plus β·KL to a frozen reference (k3 estimator).
"""

from __future__ import annotations

import copy

import lightning as L
import torch

from omnireward.data.records import Pair
from omnireward.errors import ConfigError
from omnireward.heads.judge import (
    LETTER_LABEL,
    SWAP_LABEL,
    completion_mask,
    decode,
    format_ok,
    judge_conversation,
    lm_loss,
    load_template,
    parse_verdict,
    prompt_batch,
    sample,
    sft_target,
    strip_end,
    token_logprobs,
    verdict_probs,
)
from omnireward.metrics import summarize
from omnireward.modules.optim import configure, load_rng, save_rng
from omnireward.reward_model import RewardModel
from omnireward.strategies import gather_rows


class PairBatch:
    """Pairs and the A/B order each is shown in. A plain class on purpose: Lightning's device
    transfer would try to rebuild dataclasses (and fails on frozen ones such as Media)."""

    def __init__(self, pairs: list[Pair], swaps: list[bool]):
        self.pairs, self.swaps = pairs, swaps

    def __len__(self) -> int:
        return len(self.pairs)


def verdict_reward(predicted: str | None, label: str, tie_credit: float = 0.0) -> float:
    """1 for the right verdict, `tie_credit` when exactly one of them is a tie, 0 otherwise or unparsed."""
    if predicted is None:
        return 0.0
    if predicted == label:
        return 1.0
    return tie_credit if "tie" in (predicted, label) else 0.0


def group_advantages(rewards: torch.Tensor, group: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """(r - mean of its group) / (std of its group) for rewards laid out group after group."""
    r = rewards.view(-1, group)
    adv = r - r.mean(1, keepdim=True)
    if scale:
        adv = adv / (r.std(1, keepdim=True, unbiased=False) + eps)
    return adv.reshape(-1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, *,
              clip_eps: float, beta: float = 0.0, ref_logp: torch.Tensor | None = None,
              agg: str = "sequence") -> tuple[torch.Tensor, dict]:
    """Clipped-ratio policy loss + β·KL(π‖π_ref) (k3: e^{ref-logp} - (ref-logp) - 1), per token.

    `agg="sequence"` averages tokens within each completion then over completions (GRPO);
    `"token"` averages over all tokens of the batch.
    """
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = adv.unsqueeze(1)
    per_token = -torch.min(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    kl = torch.zeros_like(logp)
    if beta > 0 and ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
    if agg == "sequence":
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    elif agg == "token":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
    else:
        raise ConfigError(f"unknown loss_agg {agg!r} (expected sequence or token)", field="model.loss_agg")
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        clipped = ((ratio - 1).abs() > clip_eps).to(logp.dtype)
        stats = {"kl": float((kl * mask).sum() / n), "clip_frac": float((clipped * mask).sum() / n)}
    return loss, stats


class R1Module(L.LightningModule):
    # The saved folder scores with `omnireward score --judge`; its BT head is never trained.
    has_reward_head = False

    def __init__(self, model: RewardModel, name: str = "r1", judge: str = "omni", sft_epochs: int = 1,
                 num_generations: int = 4, max_new_tokens: int = 96, temperature: float = 1.0, top_p: float = 1.0,
                 beta: float = 0.04, clip_eps: float = 0.2, iterations: int = 1, scale_rewards: bool = True,
                 loss_agg: str = "sequence", format_weight: float = 0.5, accuracy_weight: float = 1.0,
                 tie_credit: float = 0.0, swap_prob: float = 0.5, val_max_new_tokens: int | None = None,
                 lr: float = 5e-4, lm_lr: float = 1e-5, weight_decay: float = 0.0, warmup_ratio: float = 0.1):
        super().__init__()
        if num_generations < 2:
            raise ConfigError("GRPO needs at least 2 generations per prompt", field="model.num_generations")
        if iterations < 1:
            raise ConfigError("iterations must be at least 1", field="model.iterations")
        self.model = model
        self.template = load_template(judge)
        if self.template.kind != "pairwise":
            raise ConfigError(f"model=r1 trains a pairwise judge; {judge} is pointwise", field="model.judge")
        self.sft_epochs = sft_epochs
        self.G = num_generations
        self.gen = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.val_max_new_tokens = max_new_tokens if val_max_new_tokens is None else val_max_new_tokens
        self.beta, self.clip_eps, self.iterations = beta, clip_eps, iterations
        self.scale_rewards, self.loss_agg = scale_rewards, loss_agg
        self.format_weight, self.accuracy_weight, self.tie_credit = format_weight, accuracy_weight, tie_credit
        self.swap_prob = swap_prob
        self.hp = {"lr": lr, "lm_lr": lm_lr, "weight_decay": weight_decay, "warmup_ratio": warmup_ratio}
        # The frozen reference of the KL term: the policy as GRPO starts (after SFT). A registered
        # submodule so that it follows the device and a resumed run gets it back from the checkpoint.
        self.ref = None
        if beta > 0:
            self.ref = copy.deepcopy(model.backbone).eval().requires_grad_(False)
        self.register_buffer("ref_synced", torch.tensor(False))
        self._sft_active_epochs = sft_epochs
        self._buffer: tuple[dict, int] | None = None
        self._val: list[tuple[float, str, str, bool]] = []

    # ---- data ----------------------------------------------------------------------------------
    def collate(self, pairs: list[Pair]) -> PairBatch:
        swaps = (torch.rand(len(pairs)) < self.swap_prob).tolist()
        return PairBatch(list(pairs), swaps)

    @property
    def backbone(self):
        return self.model.backbone

    def on_fit_start(self):
        dm = getattr(self.trainer, "datamodule", None)
        train = getattr(dm, "splits", {}).get("train") if dm is not None else None
        if train is not None and not any(p.critique for p in train):
            self._sft_active_epochs = 0  # nothing to imitate: straight to GRPO

    def in_sft(self) -> bool:
        return self.current_epoch < self._sft_active_epochs

    def on_train_epoch_start(self):
        # GRPO's reference is the policy it starts from, i.e. after SFT.
        if (self.ref is not None and not bool(self.ref_synced) and self._sft_active_epochs > 0
                and self.current_epoch >= self._sft_active_epochs):
            self.ref.load_state_dict(self.backbone.state_dict())
            self.ref_synced.fill_(True)

    # ---- SFT -----------------------------------------------------------------------------------
    def sft_loss(self, batch: PairBatch) -> torch.Tensor | None:
        pairs = [p for p in batch.pairs if p.critique]
        if not pairs:
            return None
        t = self.template
        convs = [judge_conversation(t, p, answer=sft_target(t, p.critique, p.preference)) for p in pairs]
        b = self.backbone.collate(convs, lm_target=True).to(self.device)
        return lm_loss(self.backbone, b)

    # ---- GRPO ----------------------------------------------------------------------------------
    @torch.no_grad()
    def rollouts(self, batch: PairBatch) -> dict:
        """G sampled critiques per pair with their rewards, advantages, old and reference log-probs."""
        t, bb, G = self.template, self.backbone, self.G
        convs = [judge_conversation(t, p, swap=s) for p, s in zip(batch.pairs, batch.swaps) for _ in range(G)]
        labels = [SWAP_LABEL[p.preference] if s else p.preference
                  for p, s in zip(batch.pairs, batch.swaps) for _ in range(G)]
        pb = prompt_batch(bb, convs).to(self.device)
        ids = sample(bb, pb, **self.gen)
        eos = bb.tokenizer.eos_token_id
        mask = completion_mask(ids, eos)
        texts = decode(bb.tokenizer, strip_end(ids, mask, eos))
        fmt = torch.tensor([float(format_ok(t, x)) for x in texts])
        acc = torch.tensor([verdict_reward(LETTER_LABEL.get(parse_verdict(x) or ""), y, self.tie_credit)
                            for x, y in zip(texts, labels)])
        rewards = self.format_weight * fmt + self.accuracy_weight * acc
        ro = {"batch": pb, "ids": ids, "mask": mask, "texts": texts, "rewards": rewards, "format": fmt,
              "accuracy": acc, "adv": group_advantages(rewards, G, self.scale_rewards).to(self.device),
              "old_logp": None, "ref_logp": None}
        if self.iterations > 1:  # reused rollouts: the ratio to the sampling policy matters
            ro["old_logp"] = token_logprobs(bb, pb, ids, mask)
        if self.ref is not None:
            ro["ref_logp"] = token_logprobs(self.ref, pb, ids, mask)
        return ro

    def grpo_step(self, batch: PairBatch) -> torch.Tensor:
        # With iterations=μ>1 one batch of rollouts serves μ optimiser steps; the batches that
        # arrive meanwhile are skipped (an epoch then sees 1/μ of the prompts).
        if self._buffer is None or self._buffer[1] == 0:
            self._buffer = (self.rollouts(batch), self.iterations)
        ro, left = self._buffer
        self._buffer = (ro, left - 1)
        logp = token_logprobs(self.backbone, ro["batch"], ro["ids"], ro["mask"])
        old = ro["old_logp"] if ro["old_logp"] is not None else logp.detach()
        loss, stats = grpo_loss(logp, old, ro["adv"], ro["mask"], clip_eps=self.clip_eps, beta=self.beta,
                                ref_logp=ro["ref_logp"], agg=self.loss_agg)
        n = len(ro["rewards"])
        if left == self.iterations:  # log each rollout batch once
            self.log("train/reward", ro["rewards"].mean(), prog_bar=True, on_epoch=True, batch_size=n)
            self.log("train/reward_format", ro["format"].mean(), on_epoch=True, batch_size=n)
            self.log("train/reward_accuracy", ro["accuracy"].mean(), on_epoch=True, batch_size=n)
            self.log("train/completion_tokens", ro["mask"].sum(1).float().mean(), batch_size=n)
        self.log("train/kl", stats["kl"], batch_size=n)
        self.log("train/clip_frac", stats["clip_frac"], batch_size=n)
        return loss

    def training_step(self, batch: PairBatch, batch_idx):
        if self.in_sft():
            loss = self.sft_loss(batch)
            if loss is None:
                return None  # no critique in this batch: nothing to imitate
            self.log("train/sft_loss", loss, prog_bar=True, batch_size=len(batch))
        else:
            loss = self.grpo_step(batch)
        self.log("train/loss", loss, batch_size=len(batch))
        return loss

    # ---- validation: verdicts read from probabilities after a greedy critique --------------------
    @torch.no_grad()
    def judge_batch(self, pairs: list[Pair], max_new_tokens: int | None = None) -> tuple[torch.Tensor, list[str]]:
        """Greedy critiques and the verdict probabilities [B, 3] (response1, response2, tie)."""
        t, bb = self.template, self.backbone
        pb = prompt_batch(bb, [judge_conversation(t, p) for p in pairs]).to(self.device)
        ids = sample(bb, pb, max_new_tokens=self.val_max_new_tokens if max_new_tokens is None else max_new_tokens)
        eos = bb.tokenizer.eos_token_id
        crit = strip_end(ids, completion_mask(ids, eos), eos)
        return verdict_probs(bb, t, pb, crit), decode(bb.tokenizer, crit)

    def validation_step(self, batch: PairBatch, batch_idx):
        probs, texts = self.judge_batch(batch.pairs)
        for p, pair, text in zip(probs.tolist(), batch.pairs, texts):
            self._val.append((p[0] - p[1], pair.preference, pair.task, format_ok(self.template, text)))

    def on_validation_epoch_end(self):
        rows = gather_rows(self._val)  # every rank's pairs: the numbers are those of the whole set
        self._val.clear()
        if not rows:
            return
        d, y, tasks, fmt = zip(*rows)
        s = summarize(d, y, tasks)
        acc = s["accuracy_without_ties"]
        self.log("val/acc", acc if acc is not None else 0.0, prog_bar=True)
        if s["accuracy_with_ties"] is not None:
            self.log("val/acc_with_ties", s["accuracy_with_ties"])
        self.log("val/format", sum(fmt) / len(fmt))

    def configure_optimizers(self):
        return configure(self, self.model, lm_prefixes=(self.backbone.saved_elsewhere_prefix,), **self.hp)

    def on_save_checkpoint(self, checkpoint):
        save_rng(checkpoint)

    def on_load_checkpoint(self, checkpoint):
        load_rng(checkpoint)
