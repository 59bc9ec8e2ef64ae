"""LightningModule for joint reward modelling (JRM): BT head and LM loss on critiques, one backbone.

loss = (1-α)·L_BT + α·L_LM. The LM loss teaches the shared backbone to write the critique of a
pair (under a judge template); scoring reads only the BT head, so the saved folder is a normal
reward model that `omnireward score` runs without ever generating.
"""

from __future__ import annotations

from collections.abc import Callable

from omnireward.data.records import Pair
from omnireward.errors import ConfigError
from omnireward.heads.base import ScalarHead
from omnireward.judge.decoding import lm_loss
from omnireward.judge.templates import JudgeTemplate, judge_conversation, sft_target
from omnireward.modules.bt import BTModule
from omnireward.reward_model import RewardModel


class JointModule(BTModule):
    def __init__(
        self,
        model: RewardModel,
        loss: Callable,
        template: JudgeTemplate,
        alpha: float = 0.7,
        center_weight: float = 0.0,
        prefix_sharing: bool = True,
        lr: float = 5e-4,
        lm_lr: float = 5e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.1,
    ):
        super().__init__(
            model,
            loss=loss,
            center_weight=center_weight,
            prefix_sharing=prefix_sharing,
            lr=lr,
            lm_lr=lm_lr,
            weight_decay=weight_decay,
            warmup_ratio=warmup_ratio,
        )
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}", field="model.alpha")
        if template.kind != "pairwise":
            raise ConfigError(
                f"model=joint writes pairwise critiques; judge {template.name} is pointwise", field="judge"
            )
        if type(model.head).pair_loss is not ScalarHead.pair_loss or model.head.dimensions or self.listwise:
            raise ConfigError(
                "model=joint trains a scalar head (head=bt) with a pairwise loss on pairs; "
                "use model=bt for head=gaussian, head=multi or loss=plackett_luce",
                field="model",
            )
        self.alpha = alpha
        self.template = template

    def trains_on(self, record) -> bool:
        """Pairs with an overall label (the critiques judge a pair)."""
        return isinstance(record, Pair) and record.preference is not None

    def collate(self, pairs: list[Pair]) -> dict:
        """The BT batch, plus `lm`: the judge prompts with their critiques as LM targets."""
        out = super().collate(pairs)
        with_critique = [p for p in pairs if p.critique]
        if self.alpha > 0 and with_critique:
            t = self.template
            convs = [judge_conversation(t, p, answer=sft_target(t, p.critique, p.preference)) for p in with_critique]
            out["lm"] = self.model.backbone.processor(convs, lm_target=True)
        return out

    def training_step(self, batch, batch_idx):
        # BT first: its dropout draws the same random numbers as BTModule's would.
        r1, r2 = self.rewards(batch)
        bt = self._loss(r1, r2, batch)
        loss = (1 - self.alpha) * bt
        bs = len(batch["y"])
        if "lm" in batch:
            lm = lm_loss(self.model.backbone, batch["lm"])
            loss = loss + self.alpha * lm
            self.log("train/lm_loss", lm, prog_bar=True, on_epoch=True, batch_size=bs)
        y = batch["y"]
        keep = y != 0
        if keep.any():
            self.log("train/acc", ((r1 - r2).sign()[keep] == y[keep]).float().mean(), prog_bar=True, batch_size=bs)
        self.log("train/bt_loss", bt, batch_size=bs)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        return loss

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        if "lm" in batch:
            self.log(
                "val/lm_loss", lm_loss(self.model.backbone, batch["lm"]), batch_size=len(batch["y"]), sync_dist=True
            )
