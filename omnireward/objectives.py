"""What a model folder is — its objective — and what each command does with one.

One table, asked by train, load, score, eval, serve and export: for each objective the
network a folder loads as, the LightningModules that train it, the function that scores a file
with it and whether it has a reward head (what `serve`, `export` and quantised scoring run).
Names are dotted paths, resolved when asked, as `_target_`s are: the table sits below every
part it names.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.utils import get_class, get_method

from omnireward.errors import ModelError

CONFIG_NAME = "omnireward.yaml"


@dataclass(frozen=True)
class Objective:
    name: str  # as `objective:` in omnireward.yaml (and conf/model/*.yaml)
    network: str  # the nn.Module a folder loads as; its `from_config(backbone, cfg)` builds it
    trained_by: tuple[str, ...]  # the LightningModules (conf/model/*.yaml `_target_`) that train it
    scorer: str  # scores a file with a folder of it (`omnireward score`, `eval`)
    reward_head: bool  # a scalar reward head: serve, export and quantised scoring run it
    noun: str  # how messages name it

    def build(self, backbone, cfg):
        """The network of this objective over `backbone`, with the parts `cfg` names (e.g. its head)."""
        return get_class(self.network).from_config(backbone, cfg)

    def score_file(self, *args, **kwargs) -> dict:
        return get_method(self.scorer)(*args, **kwargs)


_REWARD = "omnireward.reward_model.RewardModel"
OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            "reward",
            _REWARD,
            ("omnireward.modules.bt.BTModule",),
            "omnireward.scoring.bt.score_file",
            reward_head=True,
            noun="reward model",
        ),
        # BT head trained beside an LM loss on critiques; scored like `reward`, by its head alone.
        Objective(
            "joint",
            _REWARD,
            ("omnireward.modules.joint.JointModule",),
            "omnireward.scoring.bt.score_file",
            reward_head=True,
            noun="reward model",
        ),
        # A generative judge (R1: SFT then GRPO; judge_dpo: DPO on judge trajectories): it judges with its template.
        Objective(
            "judge",
            "omnireward.reward_model.JudgeModel",
            ("omnireward.modules.judge.R1Module", "omnireward.modules.judge_dpo.JudgeDPOModule"),
            "omnireward.scoring.judge.judge_file",
            reward_head=False,
            noun="judge",
        ),
    )
}
JUDGE = OBJECTIVES["judge"]
# Folders written before `objective` existed name their module instead.
_LEGACY = {"r1": "judge", "joint": "joint", "bt": "reward"}


def objective(cfg) -> Objective:
    """What a (folder's or training) config says it is."""
    name = cfg.get("objective")
    if name is None:
        name = _LEGACY.get((cfg.get("model") or {}).get("name"), "reward")
    if name not in OBJECTIVES:
        raise ModelError(f"unknown objective {name!r} in {CONFIG_NAME} (expected one of {', '.join(OBJECTIVES)})")
    return OBJECTIVES[name]
