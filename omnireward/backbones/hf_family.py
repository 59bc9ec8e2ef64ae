"""HF-native checkpoint families: which transformers classes load them and what media they read.

Also: finding a checkpoint folder (local path or the local HF cache) and loading its weights,
optionally quantised by bitsandbytes while loading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from omnireward.errors import ConfigError, ModelError
from omnireward.quant.bnb import keep_cpu_layout
from omnireward.quant.options import as_quantization


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str | None  # transformers class that loads the checkpoint (None: Auto* classes)
    processor_class: str | None  # None: the tokenizer alone (text LMs)
    modalities: tuple[str, ...]  # media types the model reads natively (meshes go in as images)


OMNI = Family(
    "qwen2_5_omni", "Qwen2_5OmniThinkerForConditionalGeneration", "Qwen2_5OmniProcessor", ("image", "video", "audio")
)
FAMILIES = {
    # The whole Omni checkpoint loads as its thinker: talker and token2wav weights are skipped.
    "qwen2_5_omni": OMNI,
    "qwen2_5_omni_thinker": OMNI,
    "qwen2_5_vl": Family("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", ("image", "video")),
    "qwen3_vl": Family("qwen3_vl", "Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", ("image", "video")),
    "qwen2_audio": Family("qwen2_audio", "Qwen2AudioForConditionalGeneration", "Qwen2AudioProcessor", ("audio",)),
}
TEXT = Family("causal_lm", None, None, ())


def register_family(model_type: str, family: Family) -> Family:
    """Read checkpoints whose config.json says `model_type` as `family` (a family of the user's;
    the packaged ones are never replaced). Call it before the backbone is built."""
    have = FAMILIES.get(model_type)
    if have is not None and have != family:
        raise ConfigError(f"model_type {model_type!r} is already read as the {have.name} family")
    FAMILIES[model_type] = family
    return family


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
            raise ModelError(
                f"{name_or_path!r} is not in the local HF cache and {why}; fetch it first "
                f"(`hf download {name_or_path}`) or pass a local folder"
            ) from None
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
            raise ModelError(
                f"{path.name} (model_type {model_type!r}) runs custom code from its repository; "
                "pass backbone.trust_remote_code=true if you trust that code"
            )
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
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ConfigError(f"backbone.dtype must be auto, float32, bfloat16 or float16, not {dtype!r}")
    return names[dtype]


def quantization_config(quantization):
    """transformers' `BitsAndBytesConfig` for a `quant` component (see omnireward.quant.Quantization),
    "4bit" / "8bit", or a mapping of BitsAndBytesConfig's own keys (`load_in_4bit`, `bnb_4bit_*`)."""
    if hasattr(quantization, "items") and any(str(k).startswith(("load_in", "bnb_")) for k in quantization):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(**dict(quantization))
    q = as_quantization(quantization)
    return None if q is None else q.hf_config()


def load_model(path: Path, family: Family, *, dtype="auto", attn_implementation: str | None = None, quantization=None):
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
        model = cls.from_pretrained(path, **kwargs)
    except Exception as e:  # OSError, ValueError, RuntimeError (size mismatch), ImportError (bitsandbytes)...
        raise ModelError(f"cannot load {family.name} weights from {path}: {str(e).strip().splitlines()[0]}") from None
    if q is not None:
        keep_cpu_layout(model)
    return model
