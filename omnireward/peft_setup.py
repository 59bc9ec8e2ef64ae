"""PEFT on a backbone's LM: LoRA, or QLoRA (LoRA over a 4-bit nf4 LM), as `cfg.peft` says.

Only the LM is wrapped: the reward head, projectors and encoders live outside it and are
trained and saved as usual. The wrapped LM saves itself *merged* as a plain transformers folder
(plus the adapter in `adapter/`), so a saved model reloads without peft and gives the scores it
gave in training.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from omnireward.errors import ConfigError, ModelError
from omnireward.quant.bnb import dense_weight, inside, is_quantised_layer, quantize_lm, quiet_bnb_logs
from omnireward.quant.dense import save_plain
from omnireward.quant.options import compute_dtype_for

quiet_bnb_logs()  # before peft imports bitsandbytes
from peft import LoraConfig, PeftModelForCausalLM  # noqa: E402 (after the bitsandbytes log level is set)
from peft.tuners.lora import LoraLayer  # noqa: E402

ADAPTER_DIR = "adapter"


class LoRA:
    """LoRA adapters on the backbone's language model (`peft=lora`); the head, projectors and
    encoders train in full. `target_modules` null: the backbone's `lora_targets`."""

    def __init__(
        self,
        r: int = 16,
        alpha: float | None = None,
        dropout: float = 0.05,
        target_modules: list[str] | str | None = None,
    ):
        if int(r) <= 0:
            raise ConfigError(f"LoRA rank must be positive, got {r}", field="peft.r")
        self.r, self.alpha, self.dropout, self.target_modules = int(r), alpha, dropout, target_modules

    def apply(self, backbone) -> None:
        """Wrap the backbone's language model in adapters, in place."""
        lm = backbone.language_model()
        if is_peft_lm(lm):
            raise ModelError("the backbone's LM already has adapters")
        self.prepare(lm)
        for m in lm.modules():
            # 4-bit layers (QLoRA's, or transformers' for backbone.quantization=4bit) stay in the standard
            # layout: bitsandbytes' AVX512-BF16 CPU repacking breaks merging on save, and tiny layers.
            if hasattr(m, "support_avx512bf16_for_cpu"):
                m.support_avx512bf16_for_cpu = False
        targets = self.target_modules or backbone.lora_targets
        lora = LoraConfig(
            r=self.r,
            lora_alpha=float(self.alpha or 2 * self.r),
            lora_dropout=float(self.dropout),
            target_modules=targets if isinstance(targets, str) else list(targets),
            bias="none",
            task_type="CAUSAL_LM",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API renamed in v5
            backbone.replace_language_model(MergingLoraLM(lm, lora))

    def prepare(self, lm) -> None:
        """Hook before wrapping (QLoRA quantises here)."""


class QLoRA(LoRA):
    """QLoRA (`peft=qlora`): the LM's decoder linears quantised to 4-bit (bitsandbytes), LoRA on top."""

    def __init__(
        self,
        r: int = 16,
        alpha: float | None = None,
        dropout: float = 0.05,
        target_modules: list[str] | str | None = None,
        quant_type: str = "nf4",
        double_quant: bool = True,
        compute_dtype: str = "auto",
    ):
        super().__init__(r, alpha, dropout, target_modules)
        if quant_type not in ("nf4", "fp4"):
            raise ConfigError(f"quant_type must be nf4 or fp4, got {quant_type!r}", field="peft.quant_type")
        self.quant_type, self.double_quant, self.compute_dtype = quant_type, double_quant, compute_dtype

    def prepare(self, lm) -> None:
        dtype = self.compute_dtype
        dtype = (
            compute_dtype_for("cuda" if torch.cuda.is_available() else "cpu")
            if dtype in (None, "auto")
            else getattr(torch, dtype)
        )
        # Quantised on CPU: Lightning moves the packed weights (and their quant state) to the GPU later.
        quantize_lm(
            lm, "4bit", device="cpu", compute_dtype=dtype, quant_type=self.quant_type, double_quant=self.double_quant
        )


def is_peft_lm(lm) -> bool:
    return hasattr(lm, "peft_config") and hasattr(lm, "get_base_model")


class MergingLoraLM(PeftModelForCausalLM):
    """A LoRA-wrapped causal LM whose `save_pretrained` writes the merged, plain transformers model
    (4-bit bases dequantised) and the adapter alone in `adapter/`."""

    def save_pretrained(self, save_directory, **kwargs):
        out = Path(save_directory)
        base = self.get_base_model()
        state = merged_state_dict(self)
        # A base loaded quantised by transformers (quant=4bit) is written dense, without its quantisation config.
        save_plain(base, out, state)
        super().save_pretrained(str(out / ADAPTER_DIR), safe_serialization=True)


@torch.no_grad()
def merged_state_dict(peft_lm) -> dict[str, torch.Tensor]:
    """The base model's state dict with every LoRA delta added and every quantised weight made dense."""
    base = peft_lm.get_base_model()
    dtype = base.get_input_embeddings().weight.dtype
    lora = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    out: dict[str, torch.Tensor] = {}
    for name, layer in lora.items():
        inner = layer.get_base_layer()
        w = dense_weight(inner).float()
        for adapter in layer.active_adapters:
            if adapter in layer.lora_A:
                w = w + layer.get_delta_weight(adapter).float()
        out[f"{name}.weight"] = w.to(dtype).cpu()
        if getattr(inner, "bias", None) is not None:
            out[f"{name}.bias"] = inner.bias.detach().to(dtype).cpu()
    quantised = {
        name: m
        for name, m in base.named_modules()
        if name not in lora and is_quantised_layer(m) and not inside(name, lora)
    }
    for name, m in quantised.items():
        out[f"{name}.weight"] = dense_weight(m).to(dtype).cpu()
        if getattr(m, "bias", None) is not None:
            out[f"{name}.bias"] = m.bias.detach().to(dtype).cpu()
    owners = set(lora) | set(quantised)
    for key, value in base.state_dict().items():
        if not inside(key, owners):
            out[key] = value.detach().cpu()
    return out
