"""The plain command's defaults per modality: each modality's config group carries the training
defaults that benchmarks/defaults.py measured (docs/defaults.md)."""

from __future__ import annotations


def test_each_modality_sets_its_own_measured_training_defaults():
    """conf/modality/*.yaml carries the defaults docs/defaults.md measured; an override still wins."""
    from omnireward.config import compose_config

    grouped = {m: compose_config([f"modality={m}"]).data.group_by_length for m in
               ("text", "image", "video", "audio", "3d", "omni")}
    assert grouped == {"text": 16, "image": 16, "video": 16, "audio": 0, "3d": 16, "omni": 16}
    assert compose_config(["modality=audio", "data.group_by_length=8"]).data.group_by_length == 8
