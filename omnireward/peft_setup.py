"""Apply PEFT adapters to a backbone's LM as `cfg.peft` says (none by default)."""

from __future__ import annotations

from omnireward.errors import ConfigError


def apply_peft(backbone, peft_cfg) -> None:
    method = (peft_cfg or {}).get("method", "none")
    if method in (None, "none"):
        return
    raise ConfigError(f"peft method {method!r} is not available")
