"""LightningModule for reward modelling: Omni-RewardModel-BT and the heads beside it.

It trains any reward head (`head=bt|gaussian|multi`, omnireward/heads) on labelled pairs and on
ranked groups (`responses` + `ranking` or `best`), with a pairwise loss (`loss=bt|bt_margin|
rao_kupper|davidson`) or the listwise Plackett–Luce loss (`loss=plackett_luce`):

- pairwise loss: a pair is one comparison; a group ranked best first gives every ordered pair of
  its ranking (π_j ≻ π_k for j < k, the unranked rest below the ranked ones), all from one forward
  pass over its K responses; the head turns each comparison into its loss (`head.pair_loss`).
- listwise loss: each group is one ranking; a pair with a winner is a ranking of 2 (exactly BT).
- head=multi: a pair's per-dimension labels train their dimensions (with the pairwise loss, or BT
  under a listwise one); a pair without them trains the weighted overall from its overall label.

Every term is a mean over its comparisons (or rankings); the step's loss is their mean weighted
by how many each has, so every label counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import lightning as L
import torch

from omnireward.data.needs import DataNeeds
from omnireward.data.records import Group, Pair, Record, responses_of
from omnireward.heads.losses import bt_loss, centering_loss, is_listwise, needs_margin
from omnireward.metrics import LABEL_SIGN, summarize
from omnireward.modules.optim import configure, pack_checkpoint, unpack_checkpoint
from omnireward.reward_model import RewardModel, response_rows
from omnireward.strategies import gather_rows

NO_LABEL = 2  # in the label tensors: this comparison has no label (sign codes are +1, -1, 0)


class BTModule(L.LightningModule):
    """`loss` is a pairwise loss component, loss(d = r1 - r2, y ∈ {+1, -1, 0}, margin) -> scalar, or
    a listwise one, loss(ranked, n_ranked, n_valid) -> scalar (see heads/losses.py)."""

    def __init__(
        self,
        model: RewardModel,
        loss: Callable,
        center_weight: float = 0.0,
        prefix_sharing: bool = True,
        lr: float = 5e-4,
        lm_lr: float = 2e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.1,
    ):
        super().__init__()
        self.model = model
        model.prefix_sharing = prefix_sharing  # a pair's prompt computed once per step (backbones/packing.py)
        model.head.check_loss(loss)
        self.loss = loss
        self.listwise = is_listwise(loss)
        self.center_weight = center_weight
        self.hp = dict(lr=lr, lm_lr=lm_lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio)
        self._val: list[tuple] = []

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self.model.head.dimensions)

    def trains_on(self, record: Record) -> bool:
        """Pairs with an overall label (or, for head=multi, a label of one of its dimensions) and
        groups with a `ranking` or a `best`."""
        if isinstance(record, Pair):
            return record.preference is not None or bool(self.dimensions and record.dimension_preferences)
        return isinstance(record, Group) and (record.ranking is not None or record.best is not None)

    def data_needs(self) -> DataNeeds:
        """Its collate and records (pairs, rankings, per-dimension labels); margins for a margin
        loss; dimension labels naming the head's dimensions."""
        return DataNeeds(
            collate=self.collate,
            trains_on=self.trains_on,
            margins="the loss uses each record's margin (loss=bt_margin)" if needs_margin(self.loss) else None,
            dimensions=self.dimensions,
        )

    # ---- batches ------------------------------------------------------------------------------
    def collate(self, records: list[Record]) -> dict:
        """The responses of every record in one model batch, and each record's labels as rows of its
        outputs: `pairs` [P, 2] (response1, response2) with `y`, `margin` and `dim_y` [P, D];
        `order` [G, K] (each group's responses in gold order, best first) with `n_ranked`, `n_valid`,
        and `ranked_pairs` [Q, 2] (winner, loser) of every ordered pair the rankings imply."""
        pairs = [r for r in records if isinstance(r, Pair)]
        groups = [r for r in records if isinstance(r, Group)]
        records = pairs + groups  # pairs first: `rewards` reads their rows as before
        inputs = self.model.collate_records(records)
        rows = response_rows(inputs, [len(responses_of(r)) for r in records])
        dims = self.dimensions
        k_max = max([len(g.responses) for g in groups], default=2)
        order = torch.zeros((len(groups), k_max), dtype=torch.long)
        n_ranked, n_valid = [], []
        for i, (g, g_rows) in enumerate(zip(groups, rows[len(pairs) :])):
            gold = gold_order(g)
            order[i, : len(gold)] = torch.tensor([g_rows[k] for k in gold])
            n_ranked.append(len(g.ranking) if g.ranking is not None else 1)
            n_valid.append(len(gold))
        return {
            "inputs": inputs,
            "pairs": torch.tensor([rows[i] for i in range(len(pairs))], dtype=torch.long).reshape(-1, 2),
            "y": torch.tensor([LABEL_SIGN.get(p.preference, NO_LABEL) for p in pairs], dtype=torch.long),
            "margin": torch.tensor(
                [p.margin if p.margin is not None else float("nan") for p in pairs], dtype=torch.float
            ),
            "dim_y": torch.tensor(
                [[LABEL_SIGN.get(p.dimension_preferences.get(d), NO_LABEL) for d in dims] for p in pairs],
                dtype=torch.long,
            ).reshape(len(pairs), len(dims)),
            "order": order,
            "n_ranked": torch.tensor(n_ranked, dtype=torch.long).reshape(-1),
            "n_valid": torch.tensor(n_valid, dtype=torch.long).reshape(-1),
            "ranked_pairs": ranked_pairs(order, n_ranked, n_valid),
            "tasks": [p.task for p in pairs] + [g.task for g in groups],
        }

    def rewards(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards of the batch's pairs: (response1 [P], response2 [P])."""
        r = self.model(batch["inputs"])
        return r[batch["pairs"][:, 0]], r[batch["pairs"][:, 1]]

    def _loss(self, r1, r2, batch):
        """The pairwise loss of the batch's pairs from their rewards (model=joint's BT term)."""
        loss = self.loss(r1 - r2, batch["y"], batch["margin"])
        if self.center_weight:
            loss = loss + self.center_weight * centering_loss(r1, r2)
        return loss

    # ---- the objective ------------------------------------------------------------------------
    def objective(self, out: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        """The loss of a batch from the head's outputs over its responses (see the module docstring)."""
        pairs, y = batch["pairs"], batch["y"]
        dim_y = batch["dim_y"]
        # Pairs with per-dimension labels train their dimensions instead of the overall reward.
        overall = (y != NO_LABEL) & ~(dim_y != NO_LABEL).any(-1) if self.dimensions else y != NO_LABEL
        terms: list[tuple[torch.Tensor, int]] = []
        if self.listwise:
            win = overall & (y != 0)  # a tie is no ranking
            two = torch.stack(
                [
                    torch.where(y[win] > 0, pairs[win, 0], pairs[win, 1]),
                    torch.where(y[win] > 0, pairs[win, 1], pairs[win, 0]),
                ],
                dim=-1,
            )
            k = max(2, batch["order"].shape[1])
            order = torch.cat([torch.nn.functional.pad(two, (0, k - 2)), batch["order"]])
            n_ranked = torch.cat([torch.full((len(two),), 2, device=y.device), batch["n_ranked"]])
            n_valid = torch.cat([torch.full((len(two),), 2, device=y.device), batch["n_valid"]])
            if len(order):
                terms.append((self.loss(out["reward"][order], n_ranked, n_valid), len(order)))
        else:
            a, b, ys, m = pairs[overall, 0], pairs[overall, 1], y[overall], batch["margin"][overall]
            ga, gb = batch["ranked_pairs"][:, 0], batch["ranked_pairs"][:, 1]
            a, b = torch.cat([a, ga]), torch.cat([b, gb])
            ys = torch.cat([ys, torch.ones_like(ga)])
            m = torch.cat([m, torch.full((len(ga),), float("nan"), device=m.device)])
            if len(a):
                take = lambda rows: {k: v[rows] for k, v in out.items()}  # noqa: E731
                loss = self.model.head.pair_loss(take(a), take(b), ys, m, self.loss)
                if self.center_weight:
                    loss = loss + self.center_weight * centering_loss(out["reward"][a], out["reward"][b])
                terms.append((loss, len(a)))
        pair_loss = bt_loss if self.listwise else self.loss
        for k in range(len(self.dimensions)):
            labelled = dim_y[:, k] != NO_LABEL
            if labelled.any():
                d = out["dimensions"][pairs[labelled, 0], k] - out["dimensions"][pairs[labelled, 1], k]
                terms.append((pair_loss(d, dim_y[labelled, k], batch["margin"][labelled]), int(labelled.sum())))
        if not terms:
            return out["reward"].sum() * 0.0
        if len(terms) == 1:
            return terms[0][0]
        return sum(t * n for t, n in terms) / sum(n for _, n in terms)

    # ---- steps --------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        out = self.model.outputs(batch["inputs"])
        loss = self.objective(out, batch)
        bs = len(batch["tasks"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        right = [((m > 0) == (s > 0)) & (m != 0) for m, s in self._comparisons(out["reward"], batch)]
        if right:
            self.log("train/acc", torch.cat(right).float().mean(), prog_bar=True, batch_size=bs)
        return loss

    def _comparisons(self, r: torch.Tensor, batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(margins, signs) of the batch's labelled non-tie comparisons of the overall reward."""
        pairs, y = batch["pairs"], batch["y"]
        keep = (y != NO_LABEL) & (y != 0)
        ga, gb = batch["ranked_pairs"][:, 0], batch["ranked_pairs"][:, 1]
        out = []
        if keep.any():
            out.append((r[pairs[keep, 0]] - r[pairs[keep, 1]], y[keep]))
        if len(ga):
            out.append((r[ga] - r[gb], torch.ones_like(ga)))
        return out

    def validation_step(self, batch, batch_idx):
        out = self.model.outputs(batch["inputs"])
        loss = float(self.objective(out, batch))
        r, pairs = out["reward"], batch["pairs"]
        dims = out.get("dimensions")
        n = len(batch["tasks"])
        for i in range(len(pairs)):
            a, b = pairs[i].tolist()
            d = (dims[a] - dims[b]).tolist() if dims is not None else []
            self._val.append(
                (
                    "pair",
                    float(r[a] - r[b]),
                    int(batch["y"][i]),
                    batch["tasks"][i],
                    d,
                    batch["dim_y"][i].tolist(),
                    loss,
                    n,
                )
            )
        for a, b in batch["ranked_pairs"].tolist():
            self._val.append(("ranked", float(r[a] - r[b]), 1, None, [], [], loss, n))
        self._val.append(("batch", 0.0, NO_LABEL, None, [], [], loss, n))

    def on_validation_epoch_end(self):
        # Gathered from every rank, so the numbers are those of the whole validation set.
        rows = gather_rows(self._val)
        self._val.clear()
        batches = [row for row in rows if row[0] == "batch"]
        rows = [row for row in rows if row[0] != "batch"]
        labelled = [row for row in rows if row[2] != NO_LABEL]
        if not labelled and not any(row[5] for row in rows):
            return
        if batches:
            self.log("val/loss", sum(x[6] * x[7] for x in batches) / sum(x[7] for x in batches), prog_bar=True)
        s = summarize([x[1] for x in labelled], [x[2] for x in labelled], [x[3] for x in labelled])
        acc = s["accuracy_without_ties"]
        per_dim = []
        for k, name in enumerate(self.dimensions):
            marked = [(x[4][k], x[5][k]) for x in rows if x[5] and x[5][k] != NO_LABEL]
            d = (
                summarize([m for m, _ in marked], [lab for _, lab in marked])["accuracy_without_ties"]
                if marked
                else None
            )
            if d is not None:
                self.log(f"val/acc_{name}", d)
                per_dim.append(d)
        if acc is None and per_dim:  # only per-dimension labels: their mean picks the best epoch
            acc = sum(per_dim) / len(per_dim)
        self.log("val/acc", acc if acc is not None else 0.0, prog_bar=True)
        if s["accuracy_with_ties"] is not None:
            self.log("val/acc_with_ties", s["accuracy_with_ties"])

    def configure_optimizers(self):
        return configure(self, self.model, lm_prefixes=("backbone." + self.model.backbone.lm_prefix,), **self.hp)

    def on_save_checkpoint(self, checkpoint):
        pack_checkpoint(checkpoint, self)

    def on_load_checkpoint(self, checkpoint):
        unpack_checkpoint(checkpoint, self)


def gold_order(group: Group) -> list[int]:
    """A group's response indices best first: its `ranking`, or `best` then the rest in input order."""
    if group.ranking is not None:
        return list(group.ranking)
    return [group.best] + [i for i in range(len(group.responses)) if i != group.best]


def ranked_pairs(order: torch.Tensor, n_ranked: list[int], n_valid: list[int]) -> torch.Tensor:
    """[Q, 2] (winner row, loser row) of every ordered pair the groups' rankings imply: position j
    beats every later position k when j is among the ranked ones."""
    rows = [
        (int(order[g, j]), int(order[g, k]))
        for g in range(order.shape[0])
        for j, k in combinations(range(n_valid[g]), 2)
        if j < n_ranked[g]
    ]
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 2)
