"""Input preparation for HF-native backbones: the checkpoint's own processor and chat template.

`HFProcessor` turns conversations with media into the tensors a transformers multimodal model
takes (tokens, pixel values and grids, audio features), loading images, sampled video frames,
audio and rendered mesh views on the CPU; it runs in DataLoader workers. Without torchvision the
Qwen video processors are replaced by a numpy one (`FramesVideoProcessor`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from omnireward.backbones.base import Batch, Conversation, Turn
from omnireward.backbones.features import FeatureCache
from omnireward.backbones.hf_family import REMOTE, Family
from omnireward.backbones.modular_processor import DESCRIPTOR
from omnireward.backbones.packing import layout, pad_packed
from omnireward.data import kinds
from omnireward.data.media import load_audio, load_image, load_video, media_fingerprint
from omnireward.data.render import render_views
from omnireward.errors import ModelError


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
    for name, key in (
        ("video_preprocessor_config.json", None),
        ("processor_config.json", "video_processor"),
        ("preprocessor_config.json", None),
    ):
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
        default_size = (
            {"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32}
            if qwen3
            else {"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28}
        )
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
        data = {
            "pixel_values_videos": torch.from_numpy(np.concatenate([o[0] for o in out])),
            "video_grid_thw": torch.tensor([o[1] for o in out]),
        }
        if return_metadata:
            data["video_metadata"] = list(video_metadata) if video_metadata is not None else None
        return BatchFeature(data, skip_tensor_conversion=["video_metadata"])


class HFProcessor:
    """Conversations → `Batch` with a checkpoint's processor (its tokenizer alone for text LMs).

    Video frames, mesh views and the pixel/length limits are this object's settings; media types
    the family does not read raise a one-line ModelError naming the backbone and the modality.
    With `descriptor_tokens`, each media item is followed by its descriptor line as text
    (encoders/descriptors.py), cached per file in `feature_cache`.
    """

    def __init__(
        self,
        hf_processor,
        family: Family,
        *,
        max_length: int = 4096,
        video_frames: int = 8,
        video_short_side: int | None = 336,
        video_pixels: tuple[int | None, int | None] = (None, None),
        mesh_views: int = 4,
        mesh_view_size: int = 224,
        descriptor_tokens: bool = False,
        feature_cache=None,
    ):
        self.hf = hf_processor
        self.family = family
        self.max_length = max_length
        self.video_frames = video_frames
        self.video_short_side = video_short_side
        self.video_pixels = video_pixels
        self.mesh_views = mesh_views
        self.mesh_view_size = mesh_view_size
        self.descriptor_tokens = descriptor_tokens
        if descriptor_tokens and feature_cache is None:
            feature_cache = FeatureCache()
        self.feature_cache = feature_cache
        # A bare tokenizer (text LMs, some custom-code repos) renders string content, not item lists.
        self.text_only = hf_processor is self.tokenizer
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._specials = sorted({str(t) for t in tok.all_special_tokens if len(str(t)) > 1}, key=len, reverse=True)

    @property
    def tokenizer(self):
        return getattr(self.hf, "tokenizer", self.hf)

    @property
    def modalities(self) -> list[str]:
        """Media types the checkpoint reads natively (meshes go in as images where images do)."""
        if self.text_only:
            return []
        if self.family is REMOTE:
            parts = {"image_processor": "image", "video_processor": "video", "feature_extractor": "audio"}
            return [m for attr, m in parts.items() if getattr(self.hf, attr, None) is not None]
        return list(self.family.modalities)

    def _defuse(self, text: str) -> str:
        """User text must not smuggle chat or media control tokens into the prompt."""
        for s in self._specials:
            if s in text:
                text = text.replace(s, s[:1] + "\u200b" + s[1:])
        return text

    def _items(self, part, images: list, videos: list, audios: list) -> list[dict]:
        if isinstance(part, str):
            return [{"type": "text", "text": self._defuse(part)}]
        items = self._media_items(part, images, videos, audios)
        if self.descriptor_tokens:
            line = self.feature_cache.descriptor(part.type, Path(part.path))
            items.append({"type": "text", "text": DESCRIPTOR.format(line)})
        return items

    def _media_items(self, part, images: list, videos: list, audios: list) -> list[dict]:
        """The processor inputs of one media file (its kind's `processor_input`: a mesh goes in as
        rendered views, i.e. images) and their placeholders."""
        kind = kinds.get(part.type)
        as_input = kind.processor_input if kind is not None else None
        if as_input is None or as_input not in self.modalities:
            raise ModelError(
                f"this {self.family.name} backbone does not read {part.type} input; "
                f"use a backbone for {part.type} (see docs/hf_backbones.md)",
                file=part.path,
            )
        own = _PACKAGED_INPUTS.get(kind.name) or kind.to_processor
        if own is None:
            raise ModelError(f"media kind {kind.name!r} names no to_processor for HF backbones", file=part.path)
        inputs = own(part.path, self)
        {"image": images, "video": videos, "audio": audios}[as_input].extend(inputs)
        return [{"type": as_input} for _ in inputs]

    def audio_rate(self) -> tuple[int, float]:
        """(sampling rate, longest clip in seconds) of the checkpoint's audio feature extractor."""
        fe = getattr(self.hf, "feature_extractor", None)
        return getattr(fe, "sampling_rate", 16000), getattr(fe, "chunk_length", 30)

    def render(self, conv: Conversation, *, add_generation_prompt: bool = False):
        """Chat-template text (one placeholder per media item) and the loaded media in order."""
        images, videos, audios = [], [], []
        messages = []
        for turn in conv:
            content = [item for p in turn.parts for item in self._items(p, images, videos, audios)]
            if self.text_only or (turn.role == "system" and all(c["type"] == "text" for c in content)):
                content = "".join(c["text"] for c in content)
            messages.append({"role": turn.role, "content": content})
        text = self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        return text, images, videos, audios

    def _process(self, rendered: list[tuple], padding_side: str) -> dict:
        texts = [r[0] for r in rendered]
        images = [x for r in rendered for x in r[1]]
        videos = [x for r in rendered for x in r[2]]
        audios = [x for r in rendered for x in r[3]]
        if self.text_only:
            out = self.tokenizer(
                texts, padding=True, padding_side=padding_side, add_special_tokens=False, return_tensors="pt"
            )
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
            kw.update(audio=audios, audio_kwargs={"sampling_rate": self.hf.feature_extractor.sampling_rate})
        try:
            out = self.hf(
                text=texts, padding=True, padding_side=padding_side, return_tensors="pt", add_special_tokens=False, **kw
            )
        except ValueError as e:
            raise ModelError(f"the {self.family.name} processor refused the input: {str(e).splitlines()[0]}") from None
        out = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
        if videos and "video_second_per_grid" in out:
            # The Omni processor assumes 2 frames/s for every clip; the frames here span each whole clip.
            tp = self.hf.video_processor.temporal_patch_size
            out["video_second_per_grid"] = torch.tensor(
                [tp / v[1].sampled_fps for v in videos], dtype=out["video_second_per_grid"].dtype
            )
        return out

    def _video_size(self) -> dict | None:
        """Per-frame pixel bounds for videos when set (processors' defaults otherwise)."""
        lo, hi = self.video_pixels
        if lo is None and hi is None:
            return None
        default = getattr(self.hf, "videos_kwargs", {}).get("size") or self.hf.video_processor.size
        default = dict(default)
        return {
            "shortest_edge": lo if lo is not None else min(default["shortest_edge"], hi),
            "longest_edge": hi if hi is not None else max(default["longest_edge"], lo),
        }

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
        keep = ids[: mid - (excess + 1) // 2] + ids[mid + excess // 2 + 1 :]
        parts = list(conv[ti].parts)
        parts[pi] = tok.decode(keep)
        return [*conv[:ti], Turn(conv[ti].role, parts), *conv[ti + 1 :]]

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
                    raise ModelError(
                        f"a sequence of {lengths[i]} tokens does not fit max_length={self.max_length} "
                        "even without its text; raise backbone.max_length or use fewer video frames"
                    )
                convs[i] = shorter
        raise ModelError(f"could not fit a sequence into max_length={self.max_length}; raise backbone.max_length")

    def pack(self, groups: list[list[Conversation]]) -> Batch | None:
        """Prefix sharing for text checkpoints (backbones/packing.py). Multimodal checkpoints derive
        their rotary positions from the whole sequence (M-RoPE), so they are not packed: None."""
        if not self.text_only:
            return None
        tok, rows = self.tokenizer, []
        for convs in groups:
            prefix_text = self.render(convs[0][:-1], add_generation_prompt=True)[0]
            fulls = [self.render(c)[0] for c in convs]
            if not all(f.startswith(prefix_text) for f in fulls):
                return None
            prefix = tok(prefix_text, add_special_tokens=False)["input_ids"]
            rests = [tok(f[len(prefix_text) :], add_special_tokens=False)["input_ids"] for f in fulls]
            if len(prefix) + max(len(r) for r in rests) > self.max_length:
                return None
            seg, pos, ends = layout(len(prefix), [len(r) for r in rests])
            rows.append({"ids": prefix + [t for r in rests for t in r], "seg": seg, "pos": pos, "ends": ends})
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        return Batch(pad_packed(rows, pad_id, max(len(g) for g in groups)), {})

    def __call__(
        self,
        convs: list[Conversation],
        *,
        add_generation_prompt: bool = False,
        lm_target: bool = False,
        padding_side: str = "right",
        response_mask: bool = False,
    ) -> Batch:
        """Chat template + processor over a batch; `last_index` is each sequence's last real token.

        With `lm_target`, `labels` hold the last (assistant) turn's tokens and -100 elsewhere. With
        `response_mask`, `response_mask` [B, L] marks the last (assistant) turn's positions, its
        media tokens included (what a pooling head reads, heads/pooling.py).
        """
        convs, tensors = self._fit(convs, add_generation_prompt, padding_side)
        mask = tensors["attention_mask"]
        positions = torch.arange(mask.shape[1]).expand_as(mask)
        tensors["last_index"] = (positions * mask).argmax(-1)
        if lm_target:
            tensors["labels"] = self._labels(convs, tensors)
        if response_mask:
            answer = positions >= self._answer_starts(convs, tensors, "a response mask")[:, None]
            tensors["response_mask"] = answer & (mask == 1)
        return Batch(tensors, {})

    def _answer_starts(self, convs: list[Conversation], tensors: dict, what: str) -> torch.Tensor:
        """Each row's position of the last turn's first token (after the assistant header)."""
        prefixes = [self.render(c[:-1], add_generation_prompt=True) for c in convs]
        for c, p in zip(convs, prefixes):
            if not self.render(c)[0].startswith(p[0]):
                raise ModelError(f"the chat template does not extend the prompt with the answer; cannot build {what}")
        prefix_len = self._process(prefixes, "right")["attention_mask"].sum(-1)
        mask = tensors["attention_mask"]
        start = (mask.cumsum(-1) == 1).float().argmax(-1)  # first real token (left padding shifts it)
        return start + prefix_len

    def _labels(self, convs: list[Conversation], tensors: dict) -> torch.Tensor:
        answer_start = self._answer_starts(convs, tensors, "LM targets")
        ids, mask = tensors["input_ids"], tensors["attention_mask"]
        labels = ids.masked_fill(mask == 0, -100)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        labels[pos < answer_start[:, None]] = -100
        media_ids = [getattr(self.hf, f"{m}_token_id", None) for m in ("image", "video", "audio")]
        for t in media_ids:
            if isinstance(t, int):
                labels[ids == t] = -100
        return labels


# ---------------------------------------------------------------- media

# The packaged kinds' processor inputs, with this processor's frame, view and rate settings; a kind
# defined outside the package brings its own `to_processor` (omnireward/data/kinds.py).
_PACKAGED_INPUTS = {
    "image": lambda path, proc: [load_image(path)],
    "mesh": lambda path, proc: list(_views(path, _stamp(path), proc.mesh_views, proc.mesh_view_size)),
    "video": lambda path, proc: [_video(path, _stamp(path), proc.video_frames, proc.video_short_side)],
    "audio": lambda path, proc: [load_audio(path, *proc.audio_rate())],
}


@lru_cache(maxsize=32)
def _video(path: str, stamp: str, frames: int, short_side: int | None):
    from transformers.video_utils import VideoMetadata

    clip = load_video(path, num_frames=frames, size=short_side)
    total = max(1, int(round(clip.duration * clip.fps))) if clip.fps > 0 else frames
    idx = np.clip(np.round(clip.timestamps * clip.fps).astype(int), 0, total - 1) if clip.fps > 0 else np.arange(frames)
    meta = VideoMetadata(
        total_num_frames=total,
        fps=clip.fps or None,
        width=clip.frames.shape[2],
        height=clip.frames.shape[1],
        duration=clip.duration,
        frames_indices=idx.tolist(),
    )
    return clip.frames, meta


@lru_cache(maxsize=64)
def _views(path: str, stamp: str, n: int, size: int):
    return render_views(path, n_views=n, size=size)


def _stamp(path: str) -> str:
    return media_fingerprint(path)
