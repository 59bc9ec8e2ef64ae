"""What the judge LightningModules share: the batch of pairs with their A/B order, validation by
greedy critiques (val/acc, val/acc_with_ties, val/format over every rank), the optimizer groups and
the checkpoint packing. `R1Module` (SFT then GRPO) and `JudgeDPOModule` subclass `JudgeModule`.
"""

from __future__ import annotations

import lightning as L
import torch

from omnireward.data.needs import DataNeeds
from omnireward.data.records import Pair
from omnireward.errors import ConfigError
from omnireward.judge.critique import critique
from omnireward.judge.templates import JudgeTemplate, judge_conversation
from omnireward.judge.verdicts import format_ok
from omnireward.metrics import summarize
from omnireward.modules.optim import configure, pack_checkpoint, unpack_checkpoint
from omnireward.reward_model import JudgeModel
from omnireward.strategies import gather_rows


class PairBatch:
    """Pairs and the A/B order each is shown in. A plain class on purpose: Lightning's device
    transfer would try to rebuild dataclasses (and fails on frozen ones such as Media)."""

    def __init__(self, pairs: list[Pair], swaps: list[bool]):
        self.pairs, self.swaps = pairs, swaps

    def __len__(self) -> int:
        return len(self.pairs)


@torch.no_grad()
def judge_validation_rows(backbone, template: JudgeTemplate, pairs: list[Pair], max_new_tokens: int) -> list[tuple]:
    """(p_response1 - p_response2, gold label, task, format ok) per pair, from greedy critiques."""
    c = critique(backbone, template, [judge_conversation(template, p) for p in pairs], max_new_tokens=max_new_tokens)
    return [
        (p[0] - p[1], pair.preference, pair.task, format_ok(template, text))
        for p, pair, text in zip(c.probs.tolist(), pairs, c.texts)
    ]


def log_judge_validation(module: L.LightningModule, rows: list[tuple]) -> None:
    """val/acc (and with ties) and val/format over every rank's rows; clears `rows`."""
    gathered = gather_rows(rows)  # every rank's pairs: the numbers are those of the whole set
    rows.clear()
    if not gathered:
        return
    d, y, tasks, fmt = zip(*gathered)
    s = summarize(d, y, tasks)
    acc = s["accuracy_without_ties"]
    module.log("val/acc", acc if acc is not None else 0.0, prog_bar=True)
    if s["accuracy_with_ties"] is not None:
        module.log("val/acc_with_ties", s["accuracy_with_ties"])
    module.log("val/format", sum(fmt) / len(fmt))


class JudgeModule(L.LightningModule):
    """The hooks every judge objective shares. A subclass sets `objective` (the name its errors use)
    and implements `training_step`; `validation_step` adds greedy-critique rows to `self._val`."""

    objective = "judge"

    def __init__(self, model: JudgeModel, template: JudgeTemplate, val_max_new_tokens: int, hp: dict):
        super().__init__()
        if template.kind != "pairwise":
            raise ConfigError(
                f"model={self.objective} trains a pairwise judge; {template.name} is pointwise", field="judge"
            )
        self.model = model
        self.template = template
        self.val_max_new_tokens = val_max_new_tokens
        self.hp = hp
        self._val: list[tuple[float, str, str, bool]] = []

    @property
    def backbone(self):
        return self.model.backbone

    def data_needs(self) -> DataNeeds:
        """A judge trains on labelled pairs (the critique and verdict of a pair), through its collate."""
        return DataNeeds(collate=self.collate)

    def validation_rows(self, pairs: list[Pair]) -> None:
        self._val.extend(judge_validation_rows(self.backbone, self.template, pairs, self.val_max_new_tokens))

    def on_validation_epoch_end(self):
        log_judge_validation(self, self._val)

    def configure_optimizers(self):
        return configure(self, self.model, lm_prefixes=("backbone." + self.backbone.lm_prefix,), **self.hp)

    def on_save_checkpoint(self, checkpoint):
        pack_checkpoint(checkpoint, self)

    def on_load_checkpoint(self, checkpoint):
        unpack_checkpoint(checkpoint, self)
