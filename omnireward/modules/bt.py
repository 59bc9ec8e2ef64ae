"""LightningModule for Bradley–Terry reward modelling (Omni-RewardModel-BT)."""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch

from omnireward.data.records import Pair
from omnireward.heads.losses import centering_loss
from omnireward.metrics import LABEL_SIGN, summarize
from omnireward.modules.optim import configure, load_rng, save_rng
from omnireward.reward_model import RewardModel
from omnireward.strategies import gather_rows


class BTModule(L.LightningModule):
    """`loss` is a pairwise loss component: loss(d = r1 - r2, y ∈ {+1, -1, 0}, margin) -> scalar."""

    def __init__(self, model: RewardModel, loss: Callable, center_weight: float = 0.0, prefix_sharing: bool = True,
                 lr: float = 5e-4, lm_lr: float = 2e-5, weight_decay: float = 0.0, warmup_ratio: float = 0.1):
        super().__init__()
        self.model = model
        model.prefix_sharing = prefix_sharing  # a pair's prompt computed once per step (backbones/packing.py)
        self.loss = loss
        self.center_weight = center_weight
        self.hp = dict(lr=lr, lm_lr=lm_lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio)
        self._val: list[tuple[float, int, str]] = []

    def collate(self, pairs: list[Pair]) -> dict:
        return {
            "inputs": self.model.collate_pairs(pairs),
            "y": torch.tensor([LABEL_SIGN[p.preference] for p in pairs], dtype=torch.long),
            "margin": torch.tensor([p.margin if p.margin is not None else float("nan") for p in pairs],
                                   dtype=torch.float),
            "tasks": [p.task for p in pairs],
        }

    def rewards(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.model(batch["inputs"])
        n = len(batch["y"])
        return r[:n], r[n:]

    def _loss(self, r1, r2, batch):
        loss = self.loss(r1 - r2, batch["y"], batch["margin"])
        if self.center_weight:
            loss = loss + self.center_weight * centering_loss(r1, r2)
        return loss

    def training_step(self, batch, batch_idx):
        r1, r2 = self.rewards(batch)
        loss = self._loss(r1, r2, batch)
        y = batch["y"]
        keep = y != 0
        acc = (torch.sign(r1 - r2)[keep] == y[keep]).float().mean() if keep.any() else torch.tensor(0.0)
        bs = len(y)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/acc", acc, prog_bar=True, batch_size=bs)
        return loss

    def validation_step(self, batch, batch_idx):
        r1, r2 = self.rewards(batch)
        self._val.extend(zip(r1.tolist(), r2.tolist(), batch["y"].tolist(), batch["margin"].tolist(),
                             batch["tasks"]))

    def on_validation_epoch_end(self):
        # Gathered from every rank, so the numbers are those of the whole validation set.
        rows = gather_rows(self._val)
        self._val.clear()
        if not rows:
            return
        r1, r2, y, m, tasks = zip(*rows)
        r1, r2 = torch.tensor(r1), torch.tensor(r2)
        batch = {"y": torch.tensor(y), "margin": torch.tensor(m)}
        s = summarize((r1 - r2).tolist(), list(y), list(tasks))
        acc = s["accuracy_without_ties"]
        self.log("val/loss", self._loss(r1, r2, batch), prog_bar=True)
        self.log("val/acc", acc if acc is not None else 0.0, prog_bar=True)
        if s["accuracy_with_ties"] is not None:
            self.log("val/acc_with_ties", s["accuracy_with_ties"])

    def configure_optimizers(self):
        return configure(self, self.model, lm_prefixes=("backbone." + self.model.backbone.lm_prefix,), **self.hp)

    def on_save_checkpoint(self, checkpoint):
        save_rng(checkpoint)

    def on_load_checkpoint(self, checkpoint):
        load_rng(checkpoint)
