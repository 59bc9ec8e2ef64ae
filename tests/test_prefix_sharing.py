"""Prefix sharing: a pair's (or group's) prompt is computed once; rewards and gradients equal the
unshared path's, on the modular backbone (media anywhere) and on HF text checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from omnireward.backbones.build import build_modular
from omnireward.data.records import record_from_dict
from omnireward.heads.losses import bt_loss
from omnireward.modules.bt import BTModule
from omnireward.prompts import reward_conversation
from omnireward.reward_model import RewardModel


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("img")
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(d / f"{name}.png")
    return d


def _pairs(images, n=6):
    rows = []
    for i in range(n):
        img = lambda k: {"type": "image", "path": str(images / f"{k}.png")}  # noqa: E731
        rows.append(
            {
                "id": str(i),
                "prompt": "Which answer fits the picture? " * (1 + i % 3),
                "criteria": "prefer the shorter answer" if i % 2 else None,
                "prompt_media": [img("coffee")] if i % 3 == 0 else [],
                "response1": {"text": "a cat " * (1 + i % 4), "media": [img("chelsea")] if i % 2 else []},
                "response2": "an astronaut in space",
                "preference": "response1",
            }
        )
    return [record_from_dict(r) for r in rows]


def _rewards(model, pairs, sharing):
    model.prefix_sharing = sharing
    batch = model.collate_pairs(pairs)
    return model(batch), batch


def test_packed_rewards_equal_unshared_with_media_in_prompt_and_responses(images):
    torch.manual_seed(0)
    model = RewardModel.with_bt_head(
        build_modular(lm="tiny", encoders=["image"], pretrained_encoders=False, feature_cache=False)
    ).eval()
    pairs = _pairs(images)
    with torch.no_grad():
        a, unshared = _rewards(model, pairs, False)
        b, packed = _rewards(model, pairs, True)
    assert "segment_ids" in packed.tensors and "segment_ids" not in unshared.tensors
    assert (a - b).abs().max().item() < 1e-4
    # Fewer tokens go through the LM: the prompt (with its image tokens) once per pair.
    assert int(packed.tensors["attention_mask"].sum()) < 0.8 * int(unshared.tensors["attention_mask"].sum())


def test_gradients_through_the_shared_prefix_equal_unshared(images):
    torch.manual_seed(0)
    model = RewardModel.with_bt_head(
        build_modular(lm="tiny", encoders=["image"], pretrained_encoders=False, feature_cache=False), dropout=0.0
    )
    module = BTModule(model, loss=bt_loss)
    pairs = _pairs(images, 4)
    grads = []
    for sharing in (False, True):
        model.prefix_sharing = sharing
        model.zero_grad()
        loss = module.training_step(module.collate(pairs), 0)
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 5
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], atol=1e-5, rtol=1e-4), k


def test_a_group_of_three_answers_packs_into_one_sequence(images):
    torch.manual_seed(0)
    model = RewardModel.with_bt_head(build_modular(lm="tiny", feature_cache=False)).eval()
    rec = record_from_dict({"prompt": "Say hi", "criteria": "be brief", "response1": "hi", "response2": "hello"})
    answers = ["hi", "hello there", "good morning to you"]
    from omnireward.data.records import Response

    convs = [reward_conversation(rec, Response(a)) for a in answers]
    packed = model.backbone.processor.pack([convs])
    assert packed.tensors["reward_index"].shape == (3, 1) and packed.tensors["input_ids"].shape[0] == 1
    with torch.no_grad():
        together = model(packed)
        alone = torch.cat([model(model.backbone.processor([c])) for c in convs])
    assert (together - alone).abs().max().item() < 1e-4


def test_hf_text_checkpoint_packs_and_multimodal_falls_back(tmp_path, images):
    tiny_hf = pytest.importorskip("_tiny_hf")
    from omnireward.backbones.hf import build_hf

    pairs = [p for p in _pairs(images) if not p.prompt_media and not p.response1.media]
    torch.manual_seed(0)
    text = RewardModel.with_bt_head(build_hf(str(tiny_hf.save_text_lm(tmp_path / "t")))).eval()
    with torch.no_grad():
        a, _ = _rewards(text, pairs, False)
        b, packed = _rewards(text, pairs, True)
    assert "segment_ids" in packed.tensors and (a - b).abs().max().item() < 1e-4
    vl = RewardModel.with_bt_head(build_hf(str(tiny_hf.save_qwen2_5_vl(tmp_path / "vl")))).eval()
    with torch.no_grad():
        c, batch = _rewards(vl, pairs, True)
    assert "segment_ids" not in batch.tensors and np.isfinite(c.numpy()).all()  # unshared, M-RoPE positions
