"""Outside backbones/, code talks to a backbone only through its protocol (backbones/base.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A backbone's insides: its LM as an attribute, its embedding function, its HF model, private names,
# or probing for attributes by name.
REACH = re.compile(
    r"\b(backbone|bb|self\.backbone|model\.backbone|self\.ref)\s*\.\s*(lm|embed|model|encoders|"
    r"projectors|label_words|_\w+)\b|getattr\(\s*(backbone|bb)\b"
)


def _sources():
    for folder in ("omnireward", "cli"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            if "backbones" not in f.relative_to(ROOT).parts:
                yield f


def test_no_module_outside_backbones_reads_a_backbones_insides():
    found = [
        f"{f.relative_to(ROOT)}:{n}: {line.strip()}"
        for f in _sources()
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if REACH.search(line)
    ]
    assert not found, "reach-through into a backbone:\n" + "\n".join(found)


def test_the_check_finds_reach_through():
    for bad in (
        "x = backbone.lm.config",
        "h = self.backbone.embed(batch)",
        "getattr(backbone, 'lm')",
        "model.backbone.model.generate()",
        "bb._base()",
    ):
        assert REACH.search(bad), bad
    for ok in ("backbone.processor(convs)", "backbone.language_model()", "self.backbone.reward_hidden(b)"):
        assert not REACH.search(ok), ok


def test_both_families_implement_the_protocol():
    from omnireward.backbones.base import Backbone, Processor
    from omnireward.backbones.build import build_modular

    bb = build_modular(lm="tiny", feature_cache=False)
    assert isinstance(bb, Backbone) and isinstance(bb.processor, Processor)
    from omnireward.backbones.hf import HFBackbone
    from omnireward.backbones.hf_processor import HFProcessor

    for name in [n for n in dir(Backbone) if not n.startswith("_")]:
        assert hasattr(HFBackbone, name) or name in ("processor", "lm_prefix"), name
    assert {"tokenizer", "__call__"} <= set(dir(HFProcessor))
    assert HFBackbone.lm_prefix == "model."
