"""The quantisation options: the `quant` config component (conf/quant/) and the scoring precisions."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import torch
from omegaconf import OmegaConf

from omnireward.config import build, group_options
from omnireward.errors import ConfigError

QUANTS = ("4bit", "8bit")
# Scoring precisions beyond the conf/quant components: applied to a loaded model, not while training.
CPU_PRECISIONS = ("int8", "bf16")
SCORING_QUANTS = ("none", *QUANTS, *CPU_PRECISIONS)


@dataclass(frozen=True)
class Quantization:
    """The `quant` config component (conf/quant/*.yaml): bitsandbytes quantisation of the LM's
    decoder linear layers while it loads — 4-bit (nf4 or fp4, optional double quantisation) or
    LLM.int8. The LM head, embeddings, encoders, projectors and the reward head stay in full
    precision. Every backbone family reads it: the modular backbone quantises its LM layer by
    layer, HF backbones pass it to transformers as a `BitsAndBytesConfig`.
    """

    bits: int = 4
    quant_type: str = "nf4"  # 4-bit only: nf4 | fp4
    double_quant: bool = True  # 4-bit only: quantise the quantisation constants too
    compute_dtype: str = "auto"  # auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16

    def __post_init__(self):
        if self.bits not in (4, 8):
            raise ConfigError(f"quant.bits must be 4 or 8, got {self.bits!r}", field="quant.bits")
        if self.quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"quant.quant_type must be nf4 or fp4, got {self.quant_type!r}", field="quant.quant_type")
        if self.compute_dtype not in _DTYPES:
            raise ConfigError(
                f"quant.compute_dtype must be one of {', '.join(_DTYPES)}, got {self.compute_dtype!r}",
                field="quant.compute_dtype",
            )

    @property
    def name(self) -> str:
        """ "4bit" or "8bit": the `--quant` spelling and the conf/quant option of the defaults."""
        return f"{self.bits}bit"

    def options(self) -> dict:
        """Keyword options of `quantized_linear` beyond the bit width."""
        return {"quant_type": self.quant_type, "double_quant": self.double_quant} if self.bits == 4 else {}

    def dtype_for(self, device) -> torch.dtype:
        return compute_dtype_for(device) if self.compute_dtype == "auto" else _DTYPES[self.compute_dtype]

    def hf_config(self):
        """The same settings as transformers' `BitsAndBytesConfig`."""
        from transformers import BitsAndBytesConfig  # deferred: transformers is heavy to import

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        compute = self.dtype_for("cuda" if torch.cuda.is_available() else "cpu")
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=compute,
        )


_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype_for(device: torch.device | str) -> torch.dtype:
    """bf16 on GPU; fp32 on CPU, which keeps quantised scores closest to full precision."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def quant_option(name: str) -> Quantization | None:
    """The conf/quant option NAME (none | 4bit | 8bit) built as the training config builds it, so
    `score --quant 4bit` and `train quant=4bit` quantise the same way."""
    options = group_options()["quant"]
    if name not in options:
        raise ConfigError(
            f"unknown quantisation {name!r}; expected one of {', '.join(options)} "
            f"(scoring also takes {' or '.join(CPU_PRECISIONS)})",
            field="--quant",
        )
    node = OmegaConf.create(resources.files("omnireward.conf").joinpath("quant", f"{name}.yaml").read_text())
    node = node.get("quant") if "_target_" not in node else node  # none.yaml sets the global `quant: null`
    return None if node is None else build(node)


def as_quantization(value) -> Quantization | None:
    """A `Quantization` from what callers hold: None / "none" (no quantisation), "4bit" / "8bit"
    (the conf/quant defaults), a `Quantization`, or a mapping of its fields (a saved `quant` config)."""
    if value in (None, "none", False):
        return None
    if isinstance(value, Quantization):
        return value
    if isinstance(value, str):
        if value not in QUANTS:
            raise ConfigError(f"unknown quantisation {value!r}; expected 4bit, 8bit or none", field="quant")
        return Quantization(bits=int(value[0]))
    if isinstance(value, dict) or hasattr(value, "items"):
        fields = {k: v for k, v in dict(value).items() if k not in ("_target_", "_partial_")}
        try:
            return Quantization(**fields)
        except TypeError as e:
            raise ConfigError(f"bad quant settings {fields}: {e}", field="quant") from None
    raise ConfigError(f"unknown quantisation {value!r}; expected 4bit, 8bit, none or a quant config", field="quant")
