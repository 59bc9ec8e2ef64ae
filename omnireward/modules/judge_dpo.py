"""LightningModule for DPO on judge trajectories (UnifiedReward-Flex's stage between SFT and RL).

Each training pair carries a preferred and a rejected written judgement (`chosen_critique`,
`rejected_critique`); both are scored as the judge's answer to the pair's judge prompt, by the
policy and by a frozen copy of the starting policy (the reference).
"""

from __future__ import annotations

import copy

import torch

from omnireward.data.records import Pair
from omnireward.errors import ConfigError
from omnireward.judge.decoding import target_logprobs
from omnireward.judge.dpo import dpo_loss
from omnireward.judge.templates import JudgeTemplate, judge_conversation
from omnireward.modules.judge_base import JudgeModule, PairBatch
from omnireward.reward_model import JudgeModel


class JudgeDPOModule(JudgeModule):
    objective = "judge_dpo"

    def __init__(
        self,
        model: JudgeModel,
        template: JudgeTemplate,
        beta: float = 0.1,
        label_smoothing: float = 0.0,
        val_max_new_tokens: int = 64,
        lr: float = 5e-4,
        lm_lr: float = 5e-6,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.1,
    ):
        if beta <= 0:
            raise ConfigError(f"DPO needs beta > 0, got {beta}", field="model.beta")
        hp = {"lr": lr, "lm_lr": lm_lr, "weight_decay": weight_decay, "warmup_ratio": warmup_ratio}
        super().__init__(model, template, val_max_new_tokens, hp)
        self.beta, self.label_smoothing = beta, label_smoothing
        # The reference is the policy DPO starts from; a submodule, so it follows the device and resumes.
        self.ref = copy.deepcopy(model.backbone).eval().requires_grad_(False)

    def collate(self, pairs: list[Pair]) -> PairBatch:
        return PairBatch(list(pairs), [False] * len(pairs))

    def on_fit_start(self):
        dm = getattr(self.trainer, "datamodule", None)
        train = getattr(dm, "splits", {}).get("train", []) if dm is not None else []
        if train and not any(p.chosen_critique for p in train):
            raise ConfigError(
                "model=judge_dpo needs training pairs with chosen_critique and rejected_critique "
                "(see data_cards/critiques.md)",
                field="data.train",
            )

    def sequence_logprobs(self, backbone, pairs: list[Pair], which: str) -> torch.Tensor:
        """Summed log-probability of each pair's `which` critique as the judge's answer [B]."""
        convs = [judge_conversation(self.template, p, answer=getattr(p, which)) for p in pairs]
        batch = self.backbone.processor(convs, lm_target=True).to(self.device)
        logp, mask = target_logprobs(backbone, batch)
        return (logp * mask).sum(-1)

    def dpo(self, pairs: list[Pair]) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            ref_c = self.sequence_logprobs(self.ref, pairs, "chosen_critique")
            ref_r = self.sequence_logprobs(self.ref, pairs, "rejected_critique")
        chosen = self.sequence_logprobs(self.backbone, pairs, "chosen_critique")
        rejected = self.sequence_logprobs(self.backbone, pairs, "rejected_critique")
        return dpo_loss(chosen, rejected, ref_c, ref_r, self.beta, self.label_smoothing)

    def training_step(self, batch: PairBatch, batch_idx):
        pairs = [p for p in batch.pairs if p.chosen_critique]
        if not pairs:
            return None
        loss, stats = self.dpo(pairs)
        n = len(pairs)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/reward_margin", stats["reward_margin"], prog_bar=True, on_epoch=True, batch_size=n)
        self.log("train/reward_accuracy", stats["reward_accuracy"], on_epoch=True, batch_size=n)
        self.log("train/logp_margin", stats["logp_margin"], on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch: PairBatch, batch_idx):
        pairs = [p for p in batch.pairs if p.chosen_critique]
        if pairs:
            with torch.no_grad():
                _, stats = self.dpo(pairs)
            self.log("val/logp_margin", stats["logp_margin"], batch_size=len(pairs))
        self.validation_rows(batch.pairs)
