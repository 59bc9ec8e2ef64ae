"""HF-native backbones: a multimodal checkpoint with its own processor and chat template.

Supported: Qwen2.5-Omni (the thinker: text, image, video, audio), Qwen2.5-VL and Qwen3-VL (image,
video), Qwen2-Audio (audio), any causal LM (text), and models with custom code from their
repository (e.g. MiniCPM-o) only with `trust_remote_code=true`. Meshes reach vision backbones as
a few rendered views. The reward is read from the language model's final (normed) hidden state
at the last real token, as transformers' `*ForSequenceClassification` heads do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from omnireward.backbones.base import Batch, LogitsProcessor, train_top_layers
from omnireward.backbones.features import FeatureCache
from omnireward.backbones.hf_family import (
    _NOT_COPIED,
    _PROCESSOR_SUFFIXES,
    REMOTE,
    Family,
    detect_family,
    load_model,
    resolve_local,
)
from omnireward.backbones.hf_processor import HFProcessor, load_processor
from omnireward.backbones.packing import block_mask, gather_rewards_hidden
from omnireward.cache import cache_dir
from omnireward.errors import ConfigError, ModelError
from omnireward.quant.bnb import is_quantized
from omnireward.quant.dense import save_dense
from omnireward.strategies import checkpoint_layers

HF_DIR = "hf"


class HFBackbone(nn.Module):
    """A transformers multimodal (or text) model; implements the `Backbone` protocol (backbones/base.py)."""

    kind = "hf"
    lm_prefix = "model."

    def __init__(self, model, processor: HFProcessor, *, source: Path | None = None):
        super().__init__()
        self.model = model
        self.processor = processor
        self.source = Path(source) if source else None

    @property
    def family(self) -> Family:
        return self.processor.family

    # ---- the contract: what others see ---------------------------------------------------------
    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def hidden_size(self) -> int:
        return self.model.config.get_text_config().hidden_size

    @property
    def modalities(self) -> list[str]:
        return self.processor.modalities

    @property
    def lora_targets(self) -> list[str]:
        """Names of the Linear layers inside the language model's decoder layers (not vision/audio towers)."""
        lm = self._language_model_name()
        prefix = (lm + ".") if lm else ""
        return [
            n for n, m in self.model.named_modules() if isinstance(m, nn.Linear) and n.startswith(prefix + "layers.")
        ]

    def language_model(self) -> nn.Module:
        return self.model

    def replace_language_model(self, lm: nn.Module) -> None:
        self.model = lm

    def save(self, out: Path) -> None:
        """The HF model plus its processor files as `out/hf`, a folder this backbone (and transformers) loads."""
        hf = Path(out) / HF_DIR
        hf.mkdir(parents=True, exist_ok=True)
        if self.source is not None and self.source.resolve() != hf.resolve():
            for f in self.source.iterdir():
                if (
                    f.is_file()
                    and f.suffix in _PROCESSOR_SUFFIXES
                    and f.name not in _NOT_COPIED
                    and not f.name.endswith(".index.json")
                ):
                    shutil.copyfile(f, hf / f.name)  # follows HF-cache symlinks
        if is_quantized(self.model):  # trained over a quantised LM (quant=4bit|8bit): the folder's `quant` requantises
            save_dense(self.model, hf)
        else:
            self.model.save_pretrained(hf, safe_serialization=True)
        if self.source is None:
            self.processor.hf.save_pretrained(hf)

    def reward_hidden(self, batch: Batch) -> torch.Tensor:
        if "segment_ids" in batch.tensors:  # prefix sharing (text checkpoints): one packed sequence per group
            t = batch.tensors
            dtype = self.model.get_input_embeddings().weight.dtype
            mask = block_mask(t["segment_ids"], dtype if dtype.is_floating_point else torch.float32)
            hs = self._base()(
                input_ids=t["input_ids"], attention_mask=mask, position_ids=t["position_ids"], use_cache=False
            ).last_hidden_state
            return gather_rewards_hidden(hs, t["reward_index"]).float()
        hs = self.hidden_states(batch)
        return hs[torch.arange(hs.shape[0], device=hs.device), batch.tensors["last_index"]].float()

    def layer_states(self, batch: Batch, layer: int = -1) -> torch.Tensor:
        """Hidden states [B, L, H] of `layer` over the batch's rows, packed or not (transformers'
        `hidden_states` index: 0 the embeddings, k decoder layer k's output, -1 the final normed state)."""
        t = batch.tensors
        if "segment_ids" in t:  # prefix sharing (text checkpoints)
            dtype = self.model.get_input_embeddings().weight.dtype
            mask = block_mask(t["segment_ids"], dtype if dtype.is_floating_point else torch.float32)
            inputs = {"input_ids": t["input_ids"], "attention_mask": mask, "position_ids": t["position_ids"]}
        else:
            inputs = self._inputs(batch)
        base = self._base()
        if base is None:  # custom-code models: hidden_states from the whole model
            return self.model(**inputs, use_cache=False, output_hidden_states=True).hidden_states[layer]
        out = base(**inputs, use_cache=False, output_hidden_states=layer != -1)
        return out.last_hidden_state if layer == -1 else out.hidden_states[layer]

    def hidden_states(
        self, batch: Batch, continuation: torch.Tensor | None = None, continuation_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        inputs = self._inputs(batch, continuation, continuation_mask)
        base = self._base()
        if base is not None:
            return base(**inputs, use_cache=False).last_hidden_state
        # custom-code models: the last entry of hidden_states is the final normed state
        return self.model(**inputs, use_cache=False, output_hidden_states=True).hidden_states[-1]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.get_output_embeddings()(hidden)

    @torch.no_grad()
    def sample(
        self,
        batch: Batch,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> torch.Tensor:
        """transformers' `generate` (the model's own multimodal prefill and KV cache), cut at the
        tokenizer's end token and padded after it."""
        from transformers import GenerationConfig, LogitsProcessorList

        tok = self.tokenizer
        eos, pad = tok.eos_token_id, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        inputs = {k: v for k, v in self._inputs(batch).items() if k != "position_ids"}
        B, P = inputs["input_ids"].shape
        if max_new_tokens <= 0:
            return torch.zeros((B, 0), dtype=torch.long, device=inputs["input_ids"].device)
        # A config of our own: a checkpoint's generation_config.json (repetition penalty, top-k, its own
        # sampling defaults) must not change what "greedy" or "temperature T" means here.
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=eos,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else 1.0,
            top_p=top_p if temperature > 0 else 1.0,
            top_k=0,
        )
        kw = {"generation_config": config}
        if logits_processor is not None:
            kw["logits_processor"] = LogitsProcessorList([_NewTokensOnly(logits_processor, P)])
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else None
        was_training = self.model.training
        self.model.eval()  # no dropout in rollouts; the KV cache stays on under gradient checkpointing
        try:
            with torch.random.fork_rng(devices=[inputs["input_ids"].device] if inputs["input_ids"].is_cuda else []):
                if seed is not None:
                    torch.manual_seed(seed)
                out = self.model.generate(**inputs, **kw)
        finally:
            self.model.train(was_training)
        out = out.sequences if hasattr(out, "sequences") else out
        new = out[:, P:]
        ended = (new == eos).cumsum(-1) - (new == eos).long() > 0  # strictly after the first end token
        return new.masked_fill(ended, pad)

    # ---- inside ------------------------------------------------------------------------------
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

    def _inputs(
        self, batch: Batch, continuation: torch.Tensor | None = None, continuation_mask: torch.Tensor | None = None
    ) -> dict:
        inputs = {k: v for k, v in batch.tensors.items() if k not in ("last_index", "labels", "response_mask")}
        if continuation is not None:
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            B, L = ids.shape
            for k, v in list(inputs.items()):  # per-token tensors (token types) grow with zeros
                if k not in ("input_ids", "attention_mask") and v.dim() == 2 and tuple(v.shape) == (B, L):
                    inputs[k] = torch.cat([v, v.new_zeros((B, continuation.shape[1]))], 1)
            inputs["input_ids"] = torch.cat([ids, continuation.to(ids)], 1)
            inputs["attention_mask"] = torch.cat([mask, continuation_mask.to(mask)], 1)
        if self.processor.text_only:
            # Positions counted over real tokens: left padding matters to LMs with absolute position
            # embeddings (RoPE ones are shift-invariant; Qwen VL/Omni derive M-RoPE from the mask).
            mask = inputs["attention_mask"]
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        return inputs


class _NewTokensOnly:
    """Adapts a `(new token ids, scores) -> scores` processor to transformers' (all ids, scores) call."""

    def __init__(self, fn: LogitsProcessor, prompt_length: int):
        self.fn, self.prompt_length = fn, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.fn(input_ids[:, self.prompt_length :], scores)


# ---------------------------------------------------------------- config entry points


def build_hf(
    name_or_path: str | None = None,
    trust_remote_code: bool = False,
    dtype: str = "auto",
    max_length: int = 4096,
    attn_implementation: str | None = None,
    quantization=None,
    gradient_checkpointing: bool = False,
    revision: str | None = None,
    download: bool = False,
    video_frames: int = 8,
    video_short_side: int | None = 336,
    video_min_pixels: int | None = None,
    video_max_pixels: int | None = None,
    mesh_views: int = 4,
    mesh_view_size: int = 224,
    train_layers: int | None = None,
    descriptor_tokens: bool = False,
    feature_cache: bool = True,
) -> HFBackbone:
    """An HF-native backbone from a local folder or a hub id (from the local HF cache unless `download`).

    `dtype`: auto (the checkpoint's), float32, bfloat16, float16; `quantization`: none, 4bit, 8bit
    (bitsandbytes). Remote-code checkpoints need `trust_remote_code=True`. `train_layers` trains
    only the language model's top N decoder layers; its embeddings and the layers below stay fixed.
    `descriptor_tokens` puts each media item's measured properties (encoders/descriptors.py) after it
    as text; `feature_cache` keeps those lines on disk per file (as the modular backbone's features).
    """
    if not name_or_path:
        raise ConfigError("backbone.name_or_path is required for backbone=hf (a hub id or a local folder)")
    if video_frames < 1:
        raise ConfigError("backbone.video_frames must be >= 1")
    path = resolve_local(str(name_or_path), revision=revision, download=download)
    family = detect_family(path, trust_remote_code)
    model = load_model(path, family, dtype=dtype, attn_implementation=attn_implementation, quantization=quantization)
    processor = HFProcessor(
        load_processor(path, family),
        family,
        max_length=max_length,
        video_frames=video_frames,
        video_short_side=video_short_side,
        video_pixels=(video_min_pixels, video_max_pixels),
        mesh_views=mesh_views,
        mesh_view_size=mesh_view_size,
        descriptor_tokens=descriptor_tokens,
        feature_cache=_descriptor_cache(feature_cache) if descriptor_tokens else None,
    )
    if gradient_checkpointing:
        checkpoint_layers(model)
    train_top_layers(model, train_layers)
    return HFBackbone(model, processor, source=path)


def _descriptor_cache(on_disk: bool):
    return FeatureCache(cache_dir("features") if on_disk else None)


def reload_overrides(path) -> dict:
    """How a saved HF backbone is rebuilt: model and processor from `path/hf`, never the hub."""
    return {"name_or_path": str(Path(path) / HF_DIR), "revision": None, "download": False}
