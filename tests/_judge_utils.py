"""Helpers for the judge / GRPO / joint tests: a tiny LM over a small word-level vocabulary.

Sampling-based RL from a random 49k-token LM never hits a verdict token; over a vocabulary of a
few hundred words a few SFT steps teach the format and GRPO then has something to reinforce.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from omnireward.backbones.lm import tiny_lm_config
from omnireward.backbones.modular import ModularBackbone
from omnireward.judge.templates import TEMPLATES, load_template

SPECIALS = ["<unk>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
_PIECES = r"\[\[|\]\]|\w+|[^\w\s]| +|\n+"


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over the words, punctuation and whitespace runs of `texts`."""
    words = sorted({m.group(0) for t in texts for m in re.finditer(_PIECES, t)} | {" ", "\n", "\n\n"})
    vocab = {w: i for i, w in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECES), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|im_end|>", bos_token="<|im_start|>"
    )
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def template_texts() -> list[str]:
    out = []
    for name in TEMPLATES:
        t = load_template(name)
        out += [
            t.system,
            t.user,
            t.criteria_block,
            t.target,
            t.verdict_prefix,
            t.personalised_hint,
            *t.options.values(),
        ]
    return out


def small_backbone(
    extra_texts: list[str] = (),
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    lm: str | None = None,
    encoders: list[str] = (),
    pretrained_encoders: bool = False,
    **_,
) -> ModularBackbone:
    """A tiny random Llama over a word vocabulary that covers the judge templates and `extra_texts`
    (or, with `lm`, the saved one in that folder). Usable as a Hydra backbone `_target_`."""
    if lm is not None:
        tok = PreTrainedTokenizerFast.from_pretrained(lm)
        model = LlamaForCausalLM.from_pretrained(lm)
    else:
        tok = word_tokenizer(template_texts() + list(extra_texts) + [str(i) for i in range(11)])
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_lm_config(len(tok), hidden, layers))
    from omnireward.encoders import build_encoder

    encs = {m: build_encoder(m, pretrained=pretrained_encoders) for m in encoders}
    return ModularBackbone(model, tok, encs, max_length=512)


def reload_overrides(path) -> dict:
    """How RewardModel.from_pretrained rebuilds a saved small backbone."""
    return {"lm": str(Path(path) / "lm")}


def yes_no_rows(n: int, seed: int, critique: bool = False) -> list[dict]:
    """An easy rule: the response "yes" beats "no", on either side; critiques (when asked) carry a
    coin-flip verdict, so SFT on them teaches the format and nothing about the rule."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first = i % 2 == 0
        row = {
            "id": f"yn{seed}-{i}",
            "prompt": "Is the sky blue?",
            "response1": "yes" if first else "no",
            "response2": "no" if first else "yes",
            "preference": "response1" if first else "response2",
        }
        if critique:
            row["critique"] = f"Verdict: [[{rng.choice('AB')}]]"
        rows.append(row)
    return rows


def write_rows(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


MINI_TEMPLATE = """# A short judge prompt for tiny test models: the answers sit right before the judgement.
_target_: omnireward.judge.templates.JudgeTemplate
name: mini
kind: pairwise
format: brackets
user: "{criteria_block}{prompt}\\nA: {response_a}\\nB: {response_b}"
criteria_block: "{criteria}\\n"
target: "{critique} [[{verdict}]]"
verdict:
  prefix: " [["
  options: {response1: A, response2: B}
"""


def mini_judge_dir(folder) -> str:
    """A user config folder holding judge/mini.yaml (pass it as compose_config(config_dirs=[...]))."""
    d = Path(folder) / "judge_conf"
    (d / "judge").mkdir(parents=True, exist_ok=True)
    (d / "judge" / "mini.yaml").write_text(MINI_TEMPLATE)
    return str(d)
