"""Reward-model ensembles with uncertainty (Coste et al., "Reward Model Ensembles Help Mitigate
Overoptimization", ICLR 2024).

Every member scores the same planned batch with its own scorer (`pipeline.BTScorer`); each
member's reward is normalised by its own reward statistics (`reward_stats.json`: (reward - mean)
/ std, as `serving.scale.RewardScale` does for the RL hooks), and per response the members'
normalised rewards are combined by a rule:

    mean             the members' mean
    min              the lowest member reward (worst case)
    mean_minus_std   mean - λ·std (uncertainty-weighted; λ = 1 by default)

`std` is the population standard deviation over the K members (0 for one member). A scores line
keeps the usual fields (reward1/reward2/margin, reward, rewards/ranking/best) computed from the
combined rewards, plus

    "ensemble": {"rule", "lambda", "members", "mean", "std"}

where, for an item, `members` is the K members' normalised rewards and `mean`/`std` are numbers;
for a pair or a group each of the three is a list over the responses (response1, response2, or
the group's responses), `members[i]` holding response i's K member rewards.

Members are given as several model folders, or as one folder whose subfolders are model folders
(what `omnireward train ... ensemble.members=K` writes: `member-0`, `member-1`, ... and
`ensemble.json`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from omnireward.data.records import Item, Record
from omnireward.errors import ConfigError, ModelError
from omnireward.model_folder import STATS_NAME, is_model_folder, open_folder, require_reward_folder, reward_stats
from omnireward.scoring.batch import line_for
from omnireward.scoring.bt import BTModel, check_quant, reward_records
from omnireward.scoring.identity import source_identity
from omnireward.scoring.source import InputSource
from omnireward.scoring.stream import score_stream
from omnireward.serving.scale import RewardScale

RULES = ("mean", "min", "mean_minus_std")
MANIFEST_NAME = "ensemble.json"
RULES_HELP = (
    "mean|min|mean_minus_std: how the members' normalised rewards are combined per response "
    "(mean; the lowest; mean - λ·std, λ from --ensemble-lambda)."
)


def check_rule(rule: str, lam: float = 1.0) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; expected one of {', '.join(RULES)}", field="--ensemble")
    if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not math.isfinite(lam) or lam < 0:
        raise ConfigError(f"must be a number of 0 or more, got {lam!r}", field="--ensemble-lambda")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation (divided by K, so one member has std 0)."""
    k = len(values)
    m = sum(values) / k
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / k)


def combine(values: list[float], rule: str = "mean", lam: float = 1.0) -> float:
    """The ensemble's reward for one response from its members' normalised rewards."""
    if not values:
        raise ValueError("an ensemble needs at least one member reward")
    if rule == "min":
        return min(values)
    m, s = mean_std(values)
    if rule == "mean":
        return m
    if rule == "mean_minus_std":
        return m - lam * s
    raise ConfigError(f"unknown ensemble rule {rule!r}; expected one of {', '.join(RULES)}", field="--ensemble")


# ---- members -----------------------------------------------------------------------------------
def _natural(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def is_ensemble_folder(path: str | Path) -> bool:
    """A folder that is no model folder itself but holds model folders (or an ensemble manifest)."""

    p = Path(path)
    if not p.is_dir() or is_model_folder(p):
        return False
    return (p / MANIFEST_NAME).is_file() or any(is_model_folder(c) for c in p.iterdir() if c.is_dir())


def member_folders(models) -> list[Path]:
    """The member model folders of `models`: several folders, or one folder of model folders
    (its manifest's order when it has one, else its subfolders in natural order)."""

    paths = [Path(m) for m in ([models] if isinstance(models, (str, Path)) else models)]
    out: list[Path] = []
    for p in paths:
        if not p.exists():
            raise ModelError(f"model folder {p} does not exist")
        if is_model_folder(p):
            out.append(p)
            continue
        if not is_ensemble_folder(p):
            raise ModelError(f"{p} is neither a model folder nor a folder of model folders")
        manifest = p / MANIFEST_NAME
        if manifest.is_file():
            names = json.loads(manifest.read_text()).get("members") or []
            found = [p / n for n in names]
            missing = [str(f) for f in found if not is_model_folder(f)]
            if missing:
                raise ModelError(f"{manifest} names members that are not model folders: {', '.join(missing[:3])}")
        else:
            found = sorted((c for c in p.iterdir() if c.is_dir() and is_model_folder(c)), key=_natural)
        out.extend(found)
    if not out:
        raise ModelError("an ensemble needs at least one model folder")
    return out


def member_scale(folder: str | Path) -> RewardScale:
    """The member's reward statistics; a member without them cannot be put on the common scale."""

    require_reward_folder(folder, "an ensemble")
    scale = RewardScale.from_stats(reward_stats(open_folder(folder)))
    if not scale.known:
        raise ModelError(
            f"{folder} has no usable {STATS_NAME} (mean and a non-zero std): ensemble members are "
            "combined on rewards normalised by their own statistics"
        )
    return scale


def ensemble_identity(members: list[Path]) -> dict:
    """What a scores file of this ensemble was made from: one digest over the members' contents."""

    each = [source_identity(m, model=True) for m in members]
    digest = hashlib.sha256("\n".join(x.get("sha256", x.get("name", "")) for x in each).encode()).hexdigest()
    return {"sha256": digest, "members": each}


# ---- combining lines ---------------------------------------------------------------------------
def line_rewards(line: dict) -> list[float]:
    """A scores line's rewards in `responses_of` order."""
    if "rewards" in line:
        return list(line["rewards"])
    if "reward1" in line:
        return [line["reward1"], line["reward2"]]
    return [line["reward"]]


def combine_lines(
    records: list[Record], member_lines: list[list[dict]], scales: list[RewardScale], rule: str, lam: float
) -> list[dict]:
    """One scores line per record from every member's lines for the same records."""

    out = []
    for i, rec in enumerate(records):
        per_member = [[s.normalized(r) for r in line_rewards(lines[i])] for lines, s in zip(member_lines, scales)]
        by_response = [list(v) for v in zip(*per_member)]  # [response][member]
        stats = [mean_std(v) for v in by_response]
        combined = [combine(v, rule, lam) for v in by_response]
        line = line_for(rec, combined)
        if isinstance(rec, Item):
            ens = {"members": by_response[0], "mean": stats[0][0], "std": stats[0][1]}
        else:
            ens = {"members": by_response, "mean": [m for m, _ in stats], "std": [s for _, s in stats]}
        line["ensemble"] = {"rule": rule, "lambda": lam, **ens}
        out.append(line)
    return out


class EnsembleScorer:
    """A `pipeline.Scorer` over member scorers: each prepares and scores the same planned batch."""

    def __init__(self, scorers: list, scales: list[RewardScale], rule: str = "mean", lam: float = 1.0):
        check_rule(rule, lam)
        self.scorers, self.scales, self.rule, self.lam = scorers, scales, rule, lam

    def prepare(self, planned):
        return [s.prepare(planned) for s in self.scorers]

    def score(self, planned, prepared) -> list[dict]:
        lines = [s.score(planned, p) for s, p in zip(self.scorers, prepared)]
        return combine_lines(planned.records, lines, self.scales, self.rule, self.lam)


@dataclass
class EnsembleModel:
    """Builds the ensemble scorer: loads every member (in this process, or once per Ray actor)."""

    members: list = field(default_factory=list)  # model folders
    rule: str = "mean"
    lam: float = 1.0
    quant: str = "none"
    device: str = "auto"
    prefix_sharing: bool = True

    def __call__(self) -> EnsembleScorer:

        scorers = [BTModel(m, self.quant, self.device, self.prefix_sharing)() for m in self.members]
        return EnsembleScorer(scorers, [member_scale(m) for m in self.members], self.rule, self.lam)


class EnsembleReplica:
    """The members loaded on one device, scoring a list of records together (the server's and the
    in-process hooks' replica: every member runs on the batch the batcher formed)."""

    def __init__(self, models: list, scales: list[RewardScale], rule: str = "mean", lam: float = 1.0):
        check_rule(rule, lam)
        self.members, self.scales, self.rule, self.lam = models, scales, rule, lam

    @property
    def backbone(self):
        """The first member's backbone: its chat template reads requests (default system prompt)."""
        return self.members[0].backbone

    def reward_records(self, records: list[Record], batch_size: int) -> list[dict]:

        lines = [reward_records(m, records, batch_size, show_progress=False) for m in self.members]
        return combine_lines(records, lines, self.scales, self.rule, self.lam)


# ---- score ------------------------------------------------------------------------------------
def score_ensemble_file(
    path: str | Path,
    models,
    out: str | Path,
    *,
    rule: str = "mean",
    lam: float = 1.0,
    batch_size: int = 16,
    media_root: str | None = None,
    allow_outside_root: bool = False,
    quant: str = "none",
    device: str = "auto",
    fmt: str = "auto",
    overwrite: bool = False,
    workers: int = 1,
    on_bad_record: str = "reject",
    engine: str = "local",
    ray=None,
    show_progress: bool = True,
    prefix_sharing: bool = True,
) -> dict:
    """`omnireward score --model A --model B ...`: the ensemble's lines streamed into `out`
    (resumable like `bt.score_file`), and a summary whose `ensemble` block says who voted how."""

    check_rule(rule, lam)
    check_quant(quant, device, engine, ray)
    members = member_folders(models)
    for m in members:
        member_scale(m)  # every member has statistics, before anything is written
    source = InputSource.open(path, fmt)
    options = {
        "quant": quant,
        "format": fmt,
        "media_root": str(Path(media_root).resolve()) if media_root else None,
        "allow_outside_root": allow_outside_root,
        "on_bad_record": on_bad_record,
        "ensemble_rule": rule,
        "ensemble_lambda": lam,
    }
    if quant == "int8":
        options.update(batch_size=batch_size, prefix_sharing=prefix_sharing)
    identity = {
        "model": ensemble_identity(members),
        "input": source.identity,
        "options": json.loads(json.dumps(options, default=str)),
    }
    extra = {
        "model": [str(m) for m in members],
        "input": str(path),
        "quant": quant,
    }
    summary = score_stream(
        source,
        out,
        EnsembleModel([str(m) for m in members], rule, lam, quant, device, prefix_sharing),
        identity,
        batch_size=batch_size,
        fmt=fmt,
        media_root=media_root,
        allow_outside_root=allow_outside_root,
        overwrite=overwrite,
        workers=workers,
        on_bad_record=on_bad_record,
        engine=engine,
        ray=ray,
        show_progress=show_progress,
        extra_summary=extra,
    )
    return summary
