"""A reward model: backbone + BT head, with a self-contained save/load folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn

from omnireward.backbones.base import Batch
from omnireward.config import build
from omnireward.data.records import Pair, Record, Response
from omnireward.errors import ModelError
from omnireward.heads.bt import BTHead
from omnireward.prompts import reward_conversation

CONFIG_NAME = "omnireward.yaml"
MODULES_NAME = "modules.safetensors"
STATS_NAME = "reward_stats.json"


class RewardModel(nn.Module):
    def __init__(self, backbone: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.head = BTHead(backbone.hidden_size, dropout)

    def collate(self, records: list[Record], responses: list[Response]) -> Batch:
        return self.backbone.collate([reward_conversation(r, resp) for r, resp in zip(records, responses)])

    def collate_pairs(self, pairs: list[Pair]) -> Batch:
        """2B conversations: all response1 first, then all response2."""
        return self.collate(pairs + pairs, [p.response1 for p in pairs] + [p.response2 for p in pairs])

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.backbone(batch).last_hidden).float()

    # ---- persistence --------------------------------------------------------------------
    def save_pretrained(self, out: str | Path, cfg: DictConfig | dict, stats: dict | None = None) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.backbone.save_backbone(out)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                 if not k.startswith(self.backbone.saved_elsewhere_prefix)}
        save_file(state, str(out / MODULES_NAME))
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)) if not isinstance(cfg, dict) \
            else OmegaConf.create(cfg)
        OmegaConf.save(cfg, out / CONFIG_NAME)
        if stats is not None:
            (out / STATS_NAME).write_text(json.dumps(stats, indent=2))
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, **backbone_overrides) -> tuple["RewardModel", DictConfig]:
        path = Path(path)
        if not (path / CONFIG_NAME).exists():
            raise ModelError(f"{path} is not an omnireward model folder (no {CONFIG_NAME}); "
                             "train one with `omnireward train` or pass an exported folder")
        cfg = OmegaConf.load(path / CONFIG_NAME)
        bcfg = OmegaConf.to_container(cfg.backbone, resolve=True)
        target = bcfg["_target_"]
        reload = _import(target.rsplit(".", 1)[0] + ".reload_overrides") if "." in target else None
        bcfg.update(reload(path) if reload else {})
        bcfg.update(backbone_overrides)
        backbone = build(bcfg)
        model = cls(backbone, dropout=cfg.model.get("dropout", 0.0))
        state = load_file(str(path / MODULES_NAME))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(backbone.saved_elsewhere_prefix)]
        if missing or unexpected:
            raise ModelError(f"{path / MODULES_NAME} does not match the model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        model.eval()
        return model, cfg

    def reward_stats(self, path: str | Path) -> dict | None:
        f = Path(path) / STATS_NAME
        return json.loads(f.read_text()) if f.exists() else None


def _import(dotted: str):
    import importlib

    mod, name = dotted.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError):
        return None
