"""LightningModule for the R1-style generative judge: SFT on critiques, then GRPO with rule rewards.

The judge's arithmetic lives in `omnireward.judge` (templates, verdicts, decoding, GRPO); this
module only schedules it: SFT epochs first (skipped when no record has a critique), then GRPO
rollouts through the same `critique()` that scoring uses.
"""

from __future__ import annotations

import copy

import torch
from lightning.pytorch.utilities import rank_zero_warn

from omnireward.data.records import Pair
from omnireward.errors import ConfigError, DataFormatError
from omnireward.judge.critique import critique
from omnireward.judge.decoding import lm_loss, token_logprobs
from omnireward.judge.grpo import group_advantages, grpo_loss, verdict_reward
from omnireward.judge.templates import LETTER_LABEL, SWAP_LABEL, JudgeTemplate, judge_conversation, sft_target
from omnireward.judge.verdicts import format_ok, parse_verdict
from omnireward.modules.judge_base import JudgeModule, PairBatch
from omnireward.reward_model import JudgeModel


class R1Module(JudgeModule):
    objective = "r1"
    # The KL reference does not train but is set to the policy when GRPO starts: checkpoints keep it.
    checkpoint_keeps = ("ref.",)

    def __init__(
        self,
        model: JudgeModel,
        template: JudgeTemplate,
        sft_epochs: int = 1,
        num_generations: int = 4,
        max_new_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 1.0,
        beta: float = 0.04,
        clip_eps: float = 0.2,
        iterations: int = 1,
        scale_rewards: bool = True,
        loss_agg: str = "sequence",
        format_weight: float = 0.5,
        accuracy_weight: float = 1.0,
        tie_credit: float = 0.0,
        swap_prob: float = 0.5,
        val_max_new_tokens: int | None = None,
        lr: float = 5e-4,
        lm_lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.1,
    ):
        hp = {"lr": lr, "lm_lr": lm_lr, "weight_decay": weight_decay, "warmup_ratio": warmup_ratio}
        super().__init__(model, template, max_new_tokens if val_max_new_tokens is None else val_max_new_tokens, hp)
        if num_generations < 2:
            raise ConfigError("GRPO needs at least 2 generations per prompt", field="model.num_generations")
        if iterations < 1:
            raise ConfigError("iterations must be at least 1", field="model.iterations")
        self.sft_epochs = sft_epochs
        self.G = num_generations
        self.gen = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        self.beta, self.clip_eps, self.iterations = beta, clip_eps, iterations
        self.scale_rewards, self.loss_agg = scale_rewards, loss_agg
        self.format_weight, self.accuracy_weight, self.tie_credit = format_weight, accuracy_weight, tie_credit
        self.swap_prob = swap_prob
        # The frozen reference of the KL term: the policy as GRPO starts (after SFT). A registered
        # submodule so that it follows the device and a resumed run gets it back from the checkpoint.
        self.ref = None
        if beta > 0:
            self.ref = copy.deepcopy(model.backbone).eval().requires_grad_(False)
        self.register_buffer("ref_synced", torch.tensor(False))
        self._sft_active_epochs = sft_epochs
        self._buffer: tuple[dict, int] | None = None

    # ---- data ----------------------------------------------------------------------------------
    def collate(self, pairs: list[Pair]) -> PairBatch:
        swaps = (torch.rand(len(pairs)) < self.swap_prob).tolist()
        return PairBatch(list(pairs), swaps)

    def on_fit_start(self):
        dm = getattr(self.trainer, "datamodule", None)
        train = getattr(dm, "splits", {}).get("train") if dm is not None else None
        if train is not None and self.sft_epochs > 0 and not any(p.critique for p in train):
            if self.sft_epochs >= self.trainer.max_epochs:
                raise DataFormatError(
                    f"no training record has a `critique`, and this run is SFT only (model.sft_epochs="
                    f"{self.sft_epochs} >= trainer.max_epochs={self.trainer.max_epochs}): add critiques "
                    "(data_cards/critiques.md) or set model.sft_epochs=0 for GRPO alone",
                    file=source if isinstance(source := dm.paths.get("train"), str) else None,
                    field="critique",
                )
            rank_zero_warn(
                f"no training record has a `critique`: the {self.sft_epochs} SFT epoch(s) are skipped "
                "and GRPO starts at once"
            )
            self._sft_active_epochs = 0  # nothing to imitate: straight to GRPO

    def in_sft(self) -> bool:
        return self.current_epoch < self._sft_active_epochs

    def on_train_epoch_start(self):
        # GRPO's reference is the policy it starts from, i.e. after SFT.
        if (
            self.ref is not None
            and not bool(self.ref_synced)
            and self._sft_active_epochs > 0
            and self.current_epoch >= self._sft_active_epochs
        ):
            self.ref.load_state_dict(self.backbone.state_dict())
            self.ref_synced.fill_(True)

    # ---- SFT -----------------------------------------------------------------------------------
    def sft_loss(self, batch: PairBatch) -> torch.Tensor | None:
        pairs = [p for p in batch.pairs if p.critique]
        if not pairs:
            return None
        t = self.template
        convs = [judge_conversation(t, p, answer=sft_target(t, p.critique, p.preference)) for p in pairs]
        b = self.backbone.processor(convs, lm_target=True).to(self.device)
        return lm_loss(self.backbone, b)

    # ---- GRPO ----------------------------------------------------------------------------------
    @torch.no_grad()
    def rollouts(self, batch: PairBatch) -> dict:
        """G sampled critiques per pair with their rewards, advantages, old and reference log-probs."""
        t, bb, G = self.template, self.backbone, self.G
        convs = [judge_conversation(t, p, swap=s) for p, s in zip(batch.pairs, batch.swaps) for _ in range(G)]
        labels = [
            SWAP_LABEL[p.preference] if s else p.preference for p, s in zip(batch.pairs, batch.swaps) for _ in range(G)
        ]
        c = critique(bb, t, convs, read_verdict=False, **self.gen)
        fmt = torch.tensor([float(format_ok(t, x)) for x in c.texts])
        acc = torch.tensor(
            [
                verdict_reward(LETTER_LABEL.get(parse_verdict(x) or ""), y, self.tie_credit)
                for x, y in zip(c.texts, labels)
            ]
        )
        rewards = self.format_weight * fmt + self.accuracy_weight * acc
        ro = {
            "batch": c.batch,
            "ids": c.ids,
            "mask": c.mask,
            "texts": c.texts,
            "rewards": rewards,
            "format": fmt,
            "accuracy": acc,
            "adv": group_advantages(rewards, G, self.scale_rewards).to(self.device),
            "old_logp": None,
            "ref_logp": None,
        }
        if self.iterations > 1:  # reused rollouts: the ratio to the sampling policy matters
            ro["old_logp"] = token_logprobs(bb, c.batch, c.ids, c.mask)
        if self.ref is not None:
            ro["ref_logp"] = token_logprobs(self.ref, c.batch, c.ids, c.mask)
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
        loss, stats = grpo_loss(
            logp,
            old,
            ro["adv"],
            ro["mask"],
            clip_eps=self.clip_eps,
            beta=self.beta,
            ref_logp=ro["ref_logp"],
            agg=self.loss_agg,
        )
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
    def validation_step(self, batch: PairBatch, batch_idx):
        self.validation_rows(batch.pairs)
