"""HF-native backbones: a multimodal checkpoint with its own processor and chat template.

Supported: Qwen2.5-Omni (the thinker: text, image, video, audio), Qwen2.5-VL and Qwen3-VL (image,
video), Qwen2-Audio (audio), any causal LM (text), and models with custom code from their
repository (e.g. MiniCPM-o) only with `trust_remote_code=true`. Meshes reach vision backbones as
a few rendered views. The reward is read from the language model's final (normed) hidden state
at the last real token, as transformers' `*ForSequenceClassification` heads do.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireward.backbones.base import Batch, BackboneOutput, Conversation, Turn
from omnireward.data.records import Media
from omnireward.errors import ConfigError, ModelError

HF_DIR = "hf"


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str | None  # transformers class that loads the checkpoint (None: Auto* classes)
    processor_class: str | None  # None: the tokenizer alone (text LMs)
    modalities: tuple[str, ...]  # media types the model reads natively (meshes go in as images)


OMNI = Family("qwen2_5_omni", "Qwen2_5OmniThinkerForConditionalGeneration", "Qwen2_5OmniProcessor",
              ("image", "video", "audio"))
FAMILIES = {
    # The whole Omni checkpoint loads as its thinker: talker and token2wav weights are skipped.
    "qwen2_5_omni": OMNI,
    "qwen2_5_omni_thinker": OMNI,
    "qwen2_5_vl": Family("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor",
                         ("image", "video")),
    "qwen3_vl": Family("qwen3_vl", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", ("image", "video")),
    "qwen2_audio": Family("qwen2_audio", "Qwen2AudioForConditionalGeneration", "Qwen2AudioProcessor", ("audio",)),
}
TEXT = Family("causal_lm", None, None, ())
REMOTE = Family("remote_code", None, "AutoProcessor", ("image", "video", "audio"))

# Files of a checkpoint folder that describe its processor, tokenizer and custom code: copied as
# they are into a saved model so it is self-contained (the weights and config are written anew).
_PROCESSOR_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken", ".py")
_NOT_COPIED = ("config.json", "generation_config.json")


# ---------------------------------------------------------------- resolving and loading

def resolve_local(name_or_path: str, revision: str | None = None, download: bool = False) -> Path:
    """A local folder for a path or hub id; hub ids come from the local HF cache unless `download`."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelError(f"{p} has no config.json; expected a transformers model folder")
        return p
    if name_or_path.count("/") != 1 or name_or_path.startswith((".", "/", "~")):
        raise ModelError(f"model folder not found: {name_or_path}")
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(name_or_path, revision=revision, local_files_only=offline or not download))
    except Exception as e:  # LocalEntryNotFoundError, RepositoryNotFoundError, HTTP errors
        if offline or not download:
            why = "HF_HUB_OFFLINE=1 is set" if offline else "backbone.download is false"
            raise ModelError(f"{name_or_path!r} is not in the local HF cache and {why}; fetch it first "
                             f"(`hf download {name_or_path}`) or pass a local folder") from None
        raise ModelError(f"cannot download {name_or_path!r}: {str(e).splitlines()[0]}") from None


def detect_family(path: Path, trust_remote_code: bool = False) -> Family:
    """The family of a checkpoint folder, from its config.json (`model_type`, `auto_map`)."""
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"unreadable config.json: {e}", file=path / "config.json") from None
    model_type = raw.get("model_type")
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    if raw.get("auto_map"):
        if not trust_remote_code:
            raise ModelError(f"{path.name} (model_type {model_type!r}) runs custom code from its repository; "
                             "pass backbone.trust_remote_code=true if you trust that code")
        return REMOTE
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return TEXT
    try:
        AutoConfig.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"cannot read the config of {path}: {str(e).splitlines()[0]}") from None
    supported = ", ".join(sorted(FAMILIES)) + ", or any causal LM"
    raise ModelError(f"model_type {model_type!r} is not supported as an HF backbone (supported: {supported})")


def _dtype(dtype: str | torch.dtype | None):
    if dtype in (None, "auto") or isinstance(dtype, torch.dtype):
        return dtype or "auto"
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ConfigError(f"backbone.dtype must be auto, float32, bfloat16 or float16, not {dtype!r}")
    return names[dtype]


def quantization_config(quantization):
    """bitsandbytes settings: "4bit" (nf4, double quantization), "8bit", or a BitsAndBytesConfig dict."""
    if quantization in (None, "none", False):
        return None
    from transformers import BitsAndBytesConfig

    if isinstance(quantization, dict):
        return BitsAndBytesConfig(**quantization)
    compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute)
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ConfigError(f"backbone.quantization must be none, 4bit, 8bit or a dict, not {quantization!r}")


def load_model(path: Path, family: Family, *, dtype="auto", attn_implementation: str | None = None,
               quantization=None):
    """The HF model of `family` from a local folder (custom code runs only for the REMOTE family)."""
    import transformers

    kwargs = {"dtype": _dtype(dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    q = quantization_config(quantization)
    if q is not None:
        kwargs["quantization_config"] = q
    if family is TEXT:
        cls = transformers.AutoModelForCausalLM
    elif family is REMOTE:
        auto_map = json.loads((path / "config.json").read_text()).get("auto_map", {})
        cls = transformers.AutoModelForCausalLM if "AutoModelForCausalLM" in auto_map else transformers.AutoModel
        kwargs["trust_remote_code"] = True
    else:
        cls = getattr(transformers, family.model_class)
    try:
        return cls.from_pretrained(path, **kwargs)
    except Exception as e:  # OSError, ValueError, RuntimeError (size mismatch), ImportError (bitsandbytes)...
        raise ModelError(f"cannot load {family.name} weights from {path}: {str(e).strip().splitlines()[0]}") from None


# ---------------------------------------------------------------- processors

def load_processor(path: Path, family: Family):
    """The checkpoint's processor (its tokenizer alone for text LMs), which must carry a chat template."""
    import transformers

    try:
        if family.processor_class is None:
            processor = transformers.AutoTokenizer.from_pretrained(path)
        elif family is REMOTE:
            processor = transformers.AutoProcessor.from_pretrained(path, trust_remote_code=True)
        else:
            processor = _family_processor(getattr(transformers, family.processor_class), path)
    except Exception as e:  # missing/corrupt processor files raise OSError, ValueError, KeyError...
        raise ModelError(f"cannot load the processor of {path}: {str(e).strip().splitlines()[0]}") from None
    if not getattr(processor, "chat_template", None):
        raise ModelError(f"{path} has no chat template (chat_template.jinja); use an instruct/chat checkpoint")
    return processor


def _family_processor(cls, path: Path):
    from transformers.utils import is_torchvision_available

    try:
        return cls.from_pretrained(path)
    except ImportError:
        if "video_processor" not in cls.get_attributes() or is_torchvision_available():
            raise
    # Video processors need torchvision; without it the processor is assembled with a numpy one.
    return _processor_with_numpy_video(cls, path)


def _processor_with_numpy_video(cls, path: Path):
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer

    parts = {}
    for attr in cls.get_attributes():
        if attr == "tokenizer":
            parts[attr] = AutoTokenizer.from_pretrained(path)
        elif attr == "image_processor":
            parts[attr] = AutoImageProcessor.from_pretrained(path)
        elif attr == "feature_extractor":
            parts[attr] = AutoFeatureExtractor.from_pretrained(path)
        elif attr == "video_processor":
            parts[attr] = FramesVideoProcessor(_video_config(path))
        else:
            raise ModelError(f"{cls.__name__} needs a {attr}, which cannot be built without torchvision")
    lenient = type(cls.__name__, (cls,), {"check_argument_for_proper_class": _check_but_video})
    return lenient(**parts, chat_template=_chat_template(path))


def _check_but_video(self, name, arg):
    if name == "video_processor" and isinstance(arg, FramesVideoProcessor):
        return FramesVideoProcessor
    return super(type(self), self).check_argument_for_proper_class(name, arg)


def _video_config(path: Path) -> dict:
    """The video processor settings saved with the checkpoint (hub or composite layout)."""
    for name, key in (("video_preprocessor_config.json", None), ("processor_config.json", "video_processor"),
                      ("preprocessor_config.json", None)):
        f = path / name
        if f.exists():
            cfg = json.loads(f.read_text())
            cfg = cfg.get(key) if key else cfg
            if cfg:
                return cfg
    return {}


def _chat_template(path: Path) -> str | None:
    if (path / "chat_template.jinja").exists():
        return (path / "chat_template.jinja").read_text()
    for name in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        f = path / name
        if f.exists():
            t = json.loads(f.read_text()).get("chat_template")
            if t:
                return t
    return None


class FramesVideoProcessor:
    """Qwen2-VL / Qwen3-VL video patching in numpy, for installs without torchvision.

    Same layout as transformers' Qwen2VLVideoProcessor / Qwen3VLVideoProcessor for frames that are
    already sampled: resize every frame to a multiple of patch*merge pixels within the pixel budget,
    normalise, group `temporal_patch_size` frames, flatten patches in merge order. Resizing uses
    PIL's bicubic filter, so values differ slightly from torchvision's.
    """

    def __init__(self, cfg: dict):
        self.cfg = dict(cfg)
        qwen3 = "Qwen3VL" in cfg.get("video_processor_type", "")
        self.patch_size = int(cfg.get("patch_size", 16 if qwen3 else 14))
        self.temporal_patch_size = int(cfg.get("temporal_patch_size", 2))
        self.merge_size = int(cfg.get("merge_size", 2))
        self.budget_over_frames = qwen3  # Qwen3-VL bounds the pixels of the whole clip, Qwen2-VL each frame
        default_size = {"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32} if qwen3 else \
            {"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28}
        size = dict(cfg.get("size") or default_size)
        if "min_pixels" in cfg:
            size["shortest_edge"] = cfg["min_pixels"]
        if "max_pixels" in cfg:
            size["longest_edge"] = cfg["max_pixels"]
        self.size = size
        clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
        self.mean = np.asarray(cfg.get("image_mean", [0.5] * 3 if qwen3 else clip_mean), dtype=np.float32)
        self.std = np.asarray(cfg.get("image_std", [0.5] * 3 if qwen3 else clip_std), dtype=np.float32)

    def to_dict(self) -> dict:
        return dict(self.cfg)

    def _target(self, frames: int, h: int, w: int, size: dict) -> tuple[int, int]:
        import math

        f = self.patch_size * self.merge_size
        lo, hi = size["shortest_edge"], size["longest_edge"]
        t = frames if self.budget_over_frames else 1
        if self.budget_over_frames and (h < f or w < f):
            s = max(f / h, f / w)
            h, w = int(h * s), int(w * s)
        hb, wb = round(h / f) * f, round(w / f) * f
        tb = round(frames / self.temporal_patch_size) * self.temporal_patch_size if self.budget_over_frames else 1
        if tb * hb * wb > hi:
            beta = math.sqrt(t * h * w / hi)
            hb, wb = max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
        elif tb * hb * wb < lo:
            beta = math.sqrt(lo / (t * h * w))
            hb, wb = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
        return hb, wb

    def _one(self, frames: np.ndarray, size: dict) -> tuple[np.ndarray, list[int]]:
        from PIL import Image

        n, h, w = frames.shape[:3]
        th, tw = self._target(n, h, w, size)
        x = np.stack([np.asarray(Image.fromarray(f).resize((tw, th), Image.BICUBIC)) for f in frames])
        x = ((x.astype(np.float32) / 255.0 - self.mean) / self.std).transpose(0, 3, 1, 2)  # [T,C,H,W]
        tp, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
        if pad := -n % tp:
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
        gt, gh, gw = x.shape[0] // tp, th // p, tw // p
        x = x.reshape(gt, tp, 3, gh // m, m, p, gw // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gt * gh * gw, 3 * tp * p * p), [gt, gh, gw]

    def __call__(self, videos, video_metadata=None, size=None, return_metadata=False, **_):
        from transformers import BatchFeature

        size = dict(size) if size else self.size
        out = [self._one(np.asarray(v), size) for v in videos]
        data = {"pixel_values_videos": torch.from_numpy(np.concatenate([o[0] for o in out])),
                "video_grid_thw": torch.tensor([o[1] for o in out])}
        if return_metadata:
            data["video_metadata"] = list(video_metadata) if video_metadata is not None else None
        return BatchFeature(data, skip_tensor_conversion=["video_metadata"])


# ---------------------------------------------------------------- media

@lru_cache(maxsize=32)
def _video(path: str, stamp: str, frames: int, short_side: int | None):
    from transformers.video_utils import VideoMetadata

    from omnireward.data.media import load_video

    clip = load_video(path, num_frames=frames, size=short_side)
    total = max(1, int(round(clip.duration * clip.fps))) if clip.fps > 0 else frames
    idx = np.clip(np.round(clip.timestamps * clip.fps).astype(int), 0, total - 1) if clip.fps > 0 \
        else np.arange(frames)
    meta = VideoMetadata(total_num_frames=total, fps=clip.fps or None, width=clip.frames.shape[2],
                         height=clip.frames.shape[1], duration=clip.duration, frames_indices=idx.tolist())
    return clip.frames, meta


@lru_cache(maxsize=64)
def _views(path: str, stamp: str, n: int, size: int):
    from omnireward.data.render import render_views

    return render_views(path, n_views=n, size=size)


def _stamp(path: str) -> str:
    from omnireward.data.media import media_fingerprint

    return media_fingerprint(path)


# ---------------------------------------------------------------- the backbone

class HFBackbone(nn.Module):
    kind = "hf"
    # The whole HF model is saved as the folder `hf/` next to the head, not in modules.safetensors.
    saved_elsewhere_prefix = "backbone.model."

    def __init__(self, model, processor, family: Family, *, source: Path | None = None, max_length: int = 4096,
                 video_frames: int = 8, video_short_side: int | None = 336,
                 video_pixels: tuple[int | None, int | None] = (None, None), mesh_views: int = 4,
                 mesh_view_size: int = 224):
        super().__init__()
        self.model = model
        self.processor = processor
        self.family = family
        self.source = Path(source) if source else None
        self.max_length = max_length
        self.video_frames = video_frames
        self.video_short_side = video_short_side
        self.video_pixels = video_pixels
        self.mesh_views = mesh_views
        self.mesh_view_size = mesh_view_size
        # A bare tokenizer (text LMs, some custom-code repos) renders string content, not item lists.
        self.text_only = processor is self.tokenizer
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._specials = sorted({str(t) for t in tok.all_special_tokens if len(str(t)) > 1}, key=len, reverse=True)

    # ---- what the heads and trainers see ------------------------------------------------------
    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def hidden_size(self) -> int:
        return self.model.config.get_text_config().hidden_size

    @property
    def modalities(self) -> list[str]:
        """Media types this backbone reads natively (meshes go in as images where images do)."""
        if self.text_only:
            return []
        if self.family is REMOTE:
            parts = {"image_processor": "image", "video_processor": "video", "feature_extractor": "audio"}
            return [m for attr, m in parts.items() if getattr(self.processor, attr, None) is not None]
        return list(self.family.modalities)

    @property
    def lora_targets(self) -> list[str]:
        """Names of the Linear layers inside the language model's decoder layers (not vision/audio towers)."""
        lm = self._language_model_name()
        prefix = (lm + ".") if lm else ""
        return [n for n, m in self.model.named_modules()
                if isinstance(m, nn.Linear) and n.startswith(prefix + "layers.")]

    def _language_model_name(self) -> str:
        decoder = self.model.get_decoder() if hasattr(self.model, "get_decoder") else None
        for name, module in self.model.named_modules():
            if module is decoder:
                return name
        raise ModelError(f"cannot find the language model inside {type(self.model).__name__}")

    def _base(self):
        """The transformer under the LM head (multimodal merging included), past any PEFT wrapper."""
        m = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return getattr(m, m.base_model_prefix, None) if self.family is not REMOTE else None

    # ---- building inputs ---------------------------------------------------------------------
    def _defuse(self, text: str) -> str:
        """User text must not smuggle chat or media control tokens into the prompt."""
        for s in self._specials:
            if s in text:
                text = text.replace(s, s[:1] + "\u200b" + s[1:])
        return text

    def _items(self, part, images: list, videos: list, audios: list) -> list[dict]:
        if isinstance(part, str):
            return [{"type": "text", "text": self._defuse(part)}]
        kind = "image" if part.type == "mesh" else part.type
        if kind not in self.modalities:
            raise ModelError(f"this {self.family.name} backbone does not read {part.type} input; "
                             f"use a backbone for {part.type} (see docs/hf_backbones.md)", file=part.path)
        if part.type == "image":
            from omnireward.data.media import load_image

            images.append(load_image(part.path))
            return [{"type": "image"}]
        if part.type == "mesh":
            views = _views(part.path, _stamp(part.path), self.mesh_views, self.mesh_view_size)
            images.extend(views)
            return [{"type": "image"} for _ in views]
        if part.type == "video":
            videos.append(_video(part.path, _stamp(part.path), self.video_frames, self.video_short_side))
            return [{"type": "video"}]
        from omnireward.data.media import load_audio

        fe = getattr(self.processor, "feature_extractor", None)
        rate = getattr(fe, "sampling_rate", 16000)
        audios.append(load_audio(part.path, sample_rate=rate, max_seconds=getattr(fe, "chunk_length", 30)))
        return [{"type": "audio"}]

    def render(self, conv: Conversation, *, add_generation_prompt: bool = False):
        """Chat-template text (one placeholder per media item) and the loaded media in order."""
        images, videos, audios = [], [], []
        messages = []
        for turn in conv:
            content = [item for p in turn.parts for item in self._items(p, images, videos, audios)]
            if self.text_only or (turn.role == "system" and all(c["type"] == "text" for c in content)):
                content = "".join(c["text"] for c in content)
            messages.append({"role": turn.role, "content": content})
        text = self.processor.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)
        return text, images, videos, audios

    def _process(self, rendered: list[tuple], padding_side: str) -> dict:
        texts = [r[0] for r in rendered]
        images = [x for r in rendered for x in r[1]]
        videos = [x for r in rendered for x in r[2]]
        audios = [x for r in rendered for x in r[3]]
        if self.text_only:
            out = self.tokenizer(texts, padding=True, padding_side=padding_side, add_special_tokens=False,
                                 return_tensors="pt")
            return dict(out)
        kw = {}
        if images:
            kw["images"] = images
        if videos:
            # Nested: `size` is also an image option, which must keep the image processor's value.
            vkw = {"video_metadata": [v[1] for v in videos], "do_sample_frames": False}
            if size := self._video_size():
                vkw["size"] = size
            kw.update(videos=[v[0] for v in videos], videos_kwargs=vkw)
        if audios:
            kw.update(audio=audios, audio_kwargs={"sampling_rate": self.processor.feature_extractor.sampling_rate})
        try:
            out = self.processor(text=texts, padding=True, padding_side=padding_side, return_tensors="pt",
                                 add_special_tokens=False, **kw)
        except ValueError as e:
            raise ModelError(f"the {self.family.name} processor refused the input: {str(e).splitlines()[0]}") from None
        out = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
        if videos and "video_second_per_grid" in out:
            # The Omni processor assumes 2 frames/s for every clip; the frames here span each whole clip.
            tp = self.processor.video_processor.temporal_patch_size
            out["video_second_per_grid"] = torch.tensor(
                [tp / v[1].sampled_fps for v in videos], dtype=out["video_second_per_grid"].dtype)
        return out

    def _video_size(self) -> dict | None:
        """Per-frame pixel bounds for videos when set (processors' defaults otherwise)."""
        lo, hi = self.video_pixels
        if lo is None and hi is None:
            return None
        default = getattr(self.processor, "videos_kwargs", {}).get("size") or self.processor.video_processor.size
        default = dict(default)
        return {"shortest_edge": lo if lo is not None else min(default["shortest_edge"], hi),
                "longest_edge": hi if hi is not None else max(default["longest_edge"], lo)}

    def _shorten(self, conv: Conversation, excess: int) -> Conversation:
        """Drop `excess` tokens from the middle of the longest text part (the last turn only if it must)."""
        tok = self.tokenizer
        candidates = [(ti, pi) for ti, t in enumerate(conv[:-1]) for pi, p in enumerate(t.parts) if isinstance(p, str)]
        candidates = candidates or [(len(conv) - 1, pi) for pi, p in enumerate(conv[-1].parts) if isinstance(p, str)]
        if not candidates:
            return conv
        ti, pi = max(candidates, key=lambda c: len(conv[c[0]].parts[c[1]]))
        ids = tok(conv[ti].parts[pi], add_special_tokens=False)["input_ids"]
        if len(ids) <= excess + 8:
            return conv
        mid = len(ids) // 2
        keep = ids[:mid - (excess + 1) // 2] + ids[mid + excess // 2 + 1:]
        parts = list(conv[ti].parts)
        parts[pi] = tok.decode(keep)
        return [*conv[:ti], Turn(conv[ti].role, parts), *conv[ti + 1:]]

    def _fit(self, convs: list[Conversation], add_generation_prompt: bool, padding_side: str):
        """Render and process; conversations over max_length lose text from their middle."""
        convs = list(convs)
        for _ in range(4):
            rendered = [self.render(c, add_generation_prompt=add_generation_prompt) for c in convs]
            out = self._process(rendered, padding_side)
            lengths = out["attention_mask"].sum(-1).tolist()
            over = [i for i, n in enumerate(lengths) if n > self.max_length]
            if not over:
                return convs, out
            for i in over:
                shorter = self._shorten(convs[i], lengths[i] - self.max_length + 2)
                if shorter is convs[i]:
                    raise ModelError(f"a sequence of {lengths[i]} tokens does not fit max_length={self.max_length} "
                                     "even without its text; raise backbone.max_length or use fewer video frames")
                convs[i] = shorter
        raise ModelError(f"could not fit a sequence into max_length={self.max_length}; raise backbone.max_length")

    def collate(self, convs: list[Conversation], *, add_generation_prompt: bool = False, lm_target: bool = False,
                padding_side: str = "right") -> Batch:
        """Chat template + processor over a batch; `last_index` is each sequence's last real token.

        With `lm_target`, `labels` hold the last (assistant) turn's tokens and -100 elsewhere.
        """
        convs, tensors = self._fit(convs, add_generation_prompt, padding_side)
        mask = tensors["attention_mask"]
        positions = torch.arange(mask.shape[1]).expand_as(mask)
        tensors["last_index"] = (positions * mask).argmax(-1)
        if lm_target:
            tensors["labels"] = self._labels(convs, tensors)
        return Batch(tensors, {})

    def _labels(self, convs: list[Conversation], tensors: dict) -> torch.Tensor:
        prefixes = [self.render(c[:-1], add_generation_prompt=True) for c in convs]
        for c, p in zip(convs, prefixes):
            if not self.render(c)[0].startswith(p[0]):
                raise ModelError("the chat template does not extend the prompt with the answer; cannot build LM targets")
        prefix_len = self._process(prefixes, "right")["attention_mask"].sum(-1)
        ids, mask = tensors["input_ids"], tensors["attention_mask"]
        labels = ids.masked_fill(mask == 0, -100)
        start = (mask.cumsum(-1) == 1).float().argmax(-1)  # first real token (left padding shifts it)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        labels[pos < (start + prefix_len)[:, None]] = -100
        media_ids = [getattr(self.processor, f"{m}_token_id", None) for m in ("image", "video", "audio")]
        for t in media_ids:
            if isinstance(t, int):
                labels[ids == t] = -100
        return labels

    def save_backbone(self, out: Path) -> None:
        """The HF model plus its processor files as `out/hf`, a folder this backbone (and transformers) loads."""
        hf = Path(out) / HF_DIR
        hf.mkdir(parents=True, exist_ok=True)
        if self.source is not None and self.source.resolve() != hf.resolve():
            for f in self.source.iterdir():
                if (f.is_file() and f.suffix in _PROCESSOR_SUFFIXES and f.name not in _NOT_COPIED
                        and not f.name.endswith(".index.json")):
                    shutil.copyfile(f, hf / f.name)  # follows HF-cache symlinks
        self.model.save_pretrained(hf, safe_serialization=True)
        if self.source is None:
            self.processor.save_pretrained(hf)

    # ---- running -----------------------------------------------------------------------------
    def _inputs(self, batch: Batch) -> dict:
        inputs = {k: v for k, v in batch.tensors.items() if k not in ("last_index", "labels")}
        if self.text_only:
            # Positions counted over real tokens: left padding matters to LMs with absolute position
            # embeddings (RoPE ones are shift-invariant; Qwen VL/Omni derive M-RoPE from the mask).
            mask = inputs["attention_mask"]
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        return inputs

    def forward(self, batch: Batch, *, need_logits: bool = False, need_hidden: bool = False) -> BackboneOutput:
        inputs = self._inputs(batch)
        base = self._base()
        if base is not None:
            hs = base(**inputs, use_cache=False).last_hidden_state
        else:  # custom-code models: the last entry of hidden_states is the final normed state
            hs = self.model(**inputs, use_cache=False, output_hidden_states=True).hidden_states[-1]
        last = hs[torch.arange(hs.shape[0], device=hs.device), batch.tensors["last_index"]]
        logits = self.model.get_output_embeddings()(hs) if need_logits else None
        return BackboneOutput(last_hidden=last.float(), logits=logits, hidden=hs if need_hidden else None)

    @torch.no_grad()
    def generate(self, batch: Batch, **gen_kwargs) -> list[str]:
        """Continue left-padded prompts; returns the decoded new text of each."""
        inputs = {k: v for k, v in self._inputs(batch).items() if k != "position_ids"}
        gen_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        out = self.model.generate(**inputs, **gen_kwargs)
        out = out.sequences if hasattr(out, "sequences") else out
        return self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


# ---------------------------------------------------------------- config entry points

def build_hf(name_or_path: str | None = None, trust_remote_code: bool = False, dtype: str = "auto", max_length: int = 4096,
             attn_implementation: str | None = None, quantization=None, gradient_checkpointing: bool = False,
             revision: str | None = None, download: bool = False, video_frames: int = 8,
             video_short_side: int | None = 336, video_min_pixels: int | None = None,
             video_max_pixels: int | None = None, mesh_views: int = 4, mesh_view_size: int = 224) -> HFBackbone:
    """An HF-native backbone from a local folder or a hub id (from the local HF cache unless `download`).

    `dtype`: auto (the checkpoint's), float32, bfloat16, float16; `quantization`: none, 4bit, 8bit
    (bitsandbytes). Remote-code checkpoints need `trust_remote_code=True`.
    """
    if not name_or_path:
        raise ConfigError("backbone.name_or_path is required for backbone=hf (a hub id or a local folder)")
    if video_frames < 1:
        raise ConfigError("backbone.video_frames must be >= 1")
    path = resolve_local(str(name_or_path), revision=revision, download=download)
    family = detect_family(path, trust_remote_code)
    model = load_model(path, family, dtype=dtype, attn_implementation=attn_implementation, quantization=quantization)
    processor = load_processor(path, family)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return HFBackbone(model, processor, family, source=path, max_length=max_length, video_frames=video_frames,
                      video_short_side=video_short_side, video_pixels=(video_min_pixels, video_max_pixels),
                      mesh_views=mesh_views, mesh_view_size=mesh_view_size)


def reload_overrides(path) -> dict:
    """How a saved HF backbone is rebuilt: model and processor from `path/hf`, never the hub."""
    return {"name_or_path": str(Path(path) / HF_DIR), "revision": None, "download": False}
