"""Judge templates: the prompt a generative judge reads and how its verdict is written.

A template is a config component (conf/judge/*.yaml, `_target_: omnireward.judge.templates.JudgeTemplate`):
system and user text with `{slots}` for the criteria, the prompt and the responses (their media
spliced in where the slot stands), the output format the GRPO format reward checks, and the
verdict prefix and options after which the verdict token is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

from omnireward.backbones.base import Conversation, Turn
from omnireward.config import build
from omnireward.data.records import Item, Pair, Response
from omnireward.errors import ConfigError
from omnireward.judge.verdicts import LABELS, LETTER_LABEL, SWAP_LABEL, parse_verdict  # noqa: F401 (re-exported)

TEMPLATES = ("omni", "think", "flex", "flex_pointwise")
FORMATS = ("brackets", "think", "flex", "flex_pointwise")
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class VerdictSpec:
    """What follows the critique: `prefix`, then one option token (A/B/C or a 0-10 score), then `suffix`."""

    prefix: str = "\n\nFinal verdict: [["
    options: dict = field(default_factory=lambda: {"response1": "A", "response2": "B", "tie": "C"})
    suffix: str = "]]"
    scores: tuple[int, int] = (0, 10)


@dataclass(frozen=True)
class JudgeTemplate:
    name: str
    user: str
    kind: str = "pairwise"  # pairwise | pointwise
    format: str = "brackets"  # brackets | think | flex | flex_pointwise: what format_ok() checks
    system: str = ""
    criteria_block: str = ""
    no_criteria_block: str = ""
    personalised_hint: str = ""
    target: str = "{critique}"
    verdict: VerdictSpec = field(default_factory=VerdictSpec)
    categories: tuple[str, ...] = ()
    personalised_category: str = "personalised"

    def __post_init__(self):
        if isinstance(self.verdict, dict):
            v = dict(self.verdict)
            if "scores" in v:
                v["scores"] = tuple(v["scores"])
            object.__setattr__(self, "verdict", VerdictSpec(**v))
        object.__setattr__(self, "categories", tuple(self.categories))
        if self.kind not in ("pairwise", "pointwise"):
            raise ConfigError(f"judge template {self.name}: kind must be pairwise or pointwise", field="kind")
        if self.format not in FORMATS:
            raise ConfigError(f"judge template {self.name}: format must be one of {', '.join(FORMATS)}", field="format")
        if self.kind == "pairwise" and not ({"response1", "response2"} <= set(self.options) <= set(LABELS)):
            raise ConfigError(
                f"judge template {self.name}: verdict options must name response1, response2 and optionally tie",
                field="verdict.options",
            )

    @property
    def verdict_prefix(self) -> str:
        return self.verdict.prefix

    @property
    def verdict_suffix(self) -> str:
        return self.verdict.suffix

    @property
    def verdict_anchor(self) -> str:
        """The end of the verdict prefix ("[[", "<answer>"): where a judge that writes its own verdict
        puts the option letter right after."""
        words = self.verdict.prefix.split()
        return words[-1] if words else self.verdict.prefix

    @property
    def options(self) -> dict:
        return self.verdict.options

    @property
    def scores(self) -> tuple[int, int]:
        return self.verdict.scores


def load_template(name: str | Path) -> JudgeTemplate:
    """A judge template by name (omni|think|flex|flex_pointwise, packaged) or a YAML path."""
    path = Path(str(name))
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text()
    else:
        res = resources.files("omnireward.conf").joinpath("judge", f"{name}.yaml")
        if not res.is_file():
            raise ConfigError(
                f"unknown judge {name!r} (expected one of {', '.join(TEMPLATES)} or a .yaml file)", field="judge"
            )
        text = res.read_text()
    d = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
    d.setdefault("_target_", f"{JudgeTemplate.__module__}.JudgeTemplate")
    return build(d)


# ---- prompts -----------------------------------------------------------------------------------
def _fill(template: str, slots: dict[str, list]) -> list:
    """Template text → parts, with each known `{slot}` replaced by its parts (text and media)."""
    parts: list = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.group(1) not in slots:
            continue  # literal braces (e.g. a JSON example) stay as they are
        parts.append(template[pos : m.start()])
        parts.extend(slots[m.group(1)])
        pos = m.end()
    parts.append(template[pos:])
    merged: list = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif not (isinstance(p, str) and not p):
            merged.append(p)
    return merged


def _response_parts(r: Response) -> list:
    return [*r.media, r.text] if r.text else list(r.media)


def _common_slots(t: JudgeTemplate, rec) -> dict[str, list]:
    criteria = (rec.criteria or "").strip()
    block = t.criteria_block.replace("{criteria}", criteria) if criteria else t.no_criteria_block
    return {
        "prompt": [*rec.prompt_media, rec.prompt],
        "criteria": [criteria],
        "criteria_block": [block],
        "personalised_hint": [t.personalised_hint if criteria else ""],
    }


def judge_conversation(t: JudgeTemplate, rec: Pair, *, swap: bool = False, answer: str | None = None) -> Conversation:
    """System = the judge's instructions; user = criteria, prompt (+media), Response A and B (+media).

    `swap` puts response2 first (Response A); `answer`, when given, is the assistant turn (SFT).
    """
    if t.kind != "pairwise":
        raise ConfigError(f"judge {t.name} is pointwise; it scores items, not pairs", field="judge")
    a, b = (rec.response2, rec.response1) if swap else (rec.response1, rec.response2)
    slots = {**_common_slots(t, rec), "response_a": _response_parts(a), "response_b": _response_parts(b)}
    return _conversation(t, slots, answer)


def pointwise_conversation(
    t: JudgeTemplate, rec: Item | Pair, response: Response | None = None, answer: str | None = None
) -> Conversation:
    """The pointwise judge prompt for one response (an Item's, or `response` of a pair)."""
    if t.kind != "pointwise":
        raise ConfigError(f"judge {t.name} is pairwise; use flex_pointwise for single responses", field="judge")
    resp = response if response is not None else rec.response
    return _conversation(t, {**_common_slots(t, rec), "response": _response_parts(resp)}, answer)


def _conversation(t: JudgeTemplate, slots: dict, answer: str | None) -> Conversation:
    conv: Conversation = [Turn("system", [t.system])] if t.system else []
    conv.append(Turn("user", _fill(t.user, slots)))
    if answer is not None:
        conv.append(Turn("assistant", [answer]))
    return conv


def sft_target(t: JudgeTemplate, critique: str, label: str | None, *, swap: bool = False) -> str:
    """What the judge should write for a record's critique: as is when it has a verdict of its own,
    else wrapped by the template's `target` with the label's letter."""
    if parse_verdict(critique) is not None or label is None:
        return critique
    lab = SWAP_LABEL[label] if swap else label
    return t.target.format(critique=critique.strip(), verdict=t.options[lab])
