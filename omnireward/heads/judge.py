"""Generative judge head: judge prompts from records, critiques, and verdicts that always parse.

A verdict is read two ways. (a) Constrained: after the critique the template's verdict prefix
(e.g. `[[`) is appended and the model's next-token probabilities over the option tokens (A/B/C)
give the verdict and `p_response1`, so every item gets one. (b) Free text: `[[A]]`,
`\\boxed{A}`, `<answer>A</answer>` or Flex JSON inside the critique, kept to report when the
critique's own verdict contradicts (a).
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from omegaconf import OmegaConf

from omnireward.backbones.base import Batch, Conversation, Turn
from omnireward.data.records import Item, Pair, Response
from omnireward.errors import ConfigError, ModelError

TEMPLATES = ("omni", "think", "flex", "flex_pointwise")
LABELS = ("response1", "response2", "tie")  # pairwise options, in the order verdict_probs returns them
LETTER_LABEL = {"A": "response1", "B": "response2", "C": "tie"}
SWAP_LABEL = {"response1": "response2", "response2": "response1", "tie": "tie"}
_SLOT = re.compile(r"\{(\w+)\}")


# ---- templates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgeTemplate:
    name: str
    kind: str  # pairwise | pointwise
    format: str  # brackets | think | flex | flex_pointwise: what format_ok() checks
    system: str
    user: str
    criteria_block: str = ""
    no_criteria_block: str = ""
    personalised_hint: str = ""
    target: str = "{critique}"
    verdict_prefix: str = "\n\nFinal verdict: [["
    options: dict = field(default_factory=lambda: {"response1": "A", "response2": "B", "tie": "C"})
    verdict_suffix: str = "]]"
    scores: tuple[int, int] = (0, 10)
    categories: tuple[str, ...] = ()
    personalised_category: str = "personalised"


def load_template(name: str | Path) -> JudgeTemplate:
    """A judge template by name (omni|think|flex|flex_pointwise, packaged) or a YAML path."""
    path = Path(str(name))
    if path.suffix in (".yaml", ".yml") and path.exists():
        text = path.read_text()
    else:
        res = resources.files("omnireward.conf").joinpath("judge", f"{name}.yaml")
        if not res.is_file():
            raise ConfigError(f"unknown judge {name!r} (expected one of {', '.join(TEMPLATES)} or a .yaml file)",
                              field="judge")
        text = res.read_text()
    d = OmegaConf.to_container(OmegaConf.create(text), resolve=True)
    verdict = d.pop("verdict", {}) or {}
    try:
        t = JudgeTemplate(
            name=d["name"], kind=d.get("kind", "pairwise"), format=d.get("format", "brackets"),
            system=d.get("system", ""), user=d["user"], criteria_block=d.get("criteria_block", ""),
            no_criteria_block=d.get("no_criteria_block", ""), personalised_hint=d.get("personalised_hint", ""),
            target=d.get("target", "{critique}"), verdict_prefix=verdict.get("prefix", "\n\nFinal verdict: [["),
            options=dict(verdict.get("options", {"response1": "A", "response2": "B", "tie": "C"})),
            verdict_suffix=verdict.get("suffix", "]]"), scores=tuple(verdict.get("scores", (0, 10))),
            categories=tuple(d.get("categories", ())),
            personalised_category=d.get("personalised_category", "personalised"))
    except KeyError as e:
        raise ConfigError(f"judge template {name} lacks the key {e.args[0]!r}", field="judge") from None
    if t.kind not in ("pairwise", "pointwise"):
        raise ConfigError(f"judge template {name}: kind must be pairwise or pointwise", field="kind")
    if t.kind == "pairwise" and not ({"response1", "response2"} <= set(t.options) <= set(LABELS)):
        raise ConfigError(f"judge template {name}: verdict options must name response1, response2 and "
                          "optionally tie", field="verdict.options")
    return t


# ---- prompts -----------------------------------------------------------------------------------
def _fill(template: str, slots: dict[str, list]) -> list:
    """Template text → parts, with each known `{slot}` replaced by its parts (text and media)."""
    parts: list = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.group(1) not in slots:
            continue  # literal braces (e.g. a JSON example) stay as they are
        parts.append(template[pos:m.start()])
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
    return {"prompt": [*rec.prompt_media, rec.prompt], "criteria": [criteria],
            "criteria_block": [block], "personalised_hint": [t.personalised_hint if criteria else ""]}


def judge_conversation(t: JudgeTemplate, rec: Pair, *, swap: bool = False, answer: str | None = None) -> Conversation:
    """System = the judge's instructions; user = criteria, prompt (+media), Response A and B (+media).

    `swap` puts response2 first (Response A); `answer`, when given, is the assistant turn (SFT).
    """
    if t.kind != "pairwise":
        raise ConfigError(f"judge {t.name} is pointwise; it scores items, not pairs", field="judge")
    a, b = (rec.response2, rec.response1) if swap else (rec.response1, rec.response2)
    slots = {**_common_slots(t, rec), "response_a": _response_parts(a), "response_b": _response_parts(b)}
    return _conversation(t, slots, answer)


def pointwise_conversation(t: JudgeTemplate, rec: Item | Pair, response: Response | None = None,
                           answer: str | None = None) -> Conversation:
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


# ---- free-text verdicts ------------------------------------------------------------------------
_BRACKETS = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*(?:Response\s+)?([ABC])\s*\}?\s*\}")
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_ANSWER_WORDS = [(re.compile(r"^(?:response|assistant|image|video|audio|model|option)?\s*([ABC])\b", re.IGNORECASE), None),
                 (re.compile(r"\b(?:response|image|video|audio|model)\s*([12])\b", re.IGNORECASE), {"1": "A", "2": "B"}),
                 (re.compile(r"\b(tie|equal|equally|same)\b", re.IGNORECASE), "C")]


def _answer_letter(content: str) -> str | None:
    for rx, mapping in _ANSWER_WORDS:
        m = rx.search(content)
        if m:
            if mapping is None:
                return m.group(1).upper()
            return mapping if isinstance(mapping, str) else mapping[m.group(1)]
    return None


def find_verdicts(text: str) -> list[tuple[int, str, str]]:
    """Every verdict written in `text`: (position, form, letter A|B|C), in reading order."""
    found = [(m.start(), "brackets", m.group(1)) for m in _BRACKETS.finditer(text)]
    found += [(m.start(), "boxed", m.group(1)) for m in _BOXED.finditer(text)]
    for m in _ANSWER.finditer(text):
        letter = _answer_letter(m.group(1))
        if letter:
            found.append((m.start(), "answer", letter))
    obj, start = _json_object(text)
    if obj is not None:
        letter = _winner_letter(obj.get("overall_winner"))
        if letter:
            found.append((start, "json", letter))
    return sorted(found)


def parse_verdict(text: str) -> str | None:
    """The critique's own final verdict (the last one written) as A|B|C, or None."""
    found = find_verdicts(text or "")
    return found[-1][2] if found else None


def format_ok(t: JudgeTemplate, text: str) -> bool:
    """Whether a completion follows the template's output format (the GRPO format reward)."""
    text = (text or "").strip()
    if t.format == "brackets":
        # A critique first, then exactly one verdict, at the very end.
        verdicts = list(_BRACKETS.finditer(text))
        return len(verdicts) == 1 and not text[verdicts[0].end():].strip(" .\n") and \
            re.search(r"\w", text[:verdicts[0].start()]) is not None
    if t.format == "think":
        return re.fullmatch(r"<think>(.+?)</think>\s*<answer>\s*[ABC]\s*</answer>", text, re.DOTALL) is not None
    if t.format == "flex":
        return parse_flex(text) is not None
    if t.format == "flex_pointwise":
        return parse_flex_pointwise(text) is not None
    raise ConfigError(f"unknown judge format {t.format!r}", field="format")


# ---- Flex JSON ---------------------------------------------------------------------------------
def _json_object(text: str) -> tuple[dict | None, int]:
    """The first JSON object in `text` that parses (models often wrap JSON in prose or fences)."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text or ""):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj, m.start()
    return None, -1


def _winner_letter(v) -> str | None:
    if not isinstance(v, str):
        return None
    v = v.strip().strip("[]").strip()
    if v.upper() in ("A", "B", "C"):
        return v.upper()
    return _answer_letter(v)


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _name(v) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(v).strip().lower()).strip("_") or "unnamed"


def parse_flex(text: str) -> dict | None:
    """Validated, normalised Flex JSON, or None when invalid.

    Per sub-dimension the two scores are rescaled to sum to 10 (a 0/0 split becomes 5/5);
    missing category winners come from the score sums, a missing overall winner from the
    category winners. Winners are A|B|C.
    """
    obj, _ = _json_object(text)
    if obj is None or not isinstance(obj.get("categories"), list) or not obj["categories"]:
        return None
    cats = []
    for c in obj["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("dimensions"), list) or not c["dimensions"]:
            return None
        dims = []
        for d in c["dimensions"]:
            if not isinstance(d, dict):
                return None
            a, b = _number(d.get("score_a")), _number(d.get("score_b"))
            if a is None or b is None or a < 0 or b < 0:
                return None
            total = a + b
            a, b = (10 * a / total, 10 * b / total) if total > 0 else (5.0, 5.0)
            dims.append({"name": _name(d.get("name", "")), "reason": str(d.get("reason", "")),
                         "score_a": a, "score_b": b})
        sa, sb = sum(d["score_a"] for d in dims), sum(d["score_b"] for d in dims)
        winner = _winner_letter(c.get("winner")) or ("A" if sa > sb else "B" if sb > sa else "C")
        cats.append({"name": _name(c.get("name", "")), "dimensions": dims, "winner": winner,
                     "score_a": sa / len(dims), "score_b": sb / len(dims)})
    overall = _winner_letter(obj.get("overall_winner"))
    if overall is None:
        votes = [c["winner"] for c in cats]
        overall = "A" if votes.count("A") > votes.count("B") else "B" if votes.count("B") > votes.count("A") else "C"
    return {"intent": str(obj.get("intent", "")), "categories": cats, "overall_winner": overall}


def parse_flex_pointwise(text: str) -> dict | None:
    """Validated pointwise Flex JSON (scores clipped to 0-10), or None."""
    obj, _ = _json_object(text)
    if obj is None or not isinstance(obj.get("categories"), list) or not obj["categories"]:
        return None
    cats = []
    for c in obj["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("dimensions"), list) or not c["dimensions"]:
            return None
        dims = []
        for d in c["dimensions"]:
            s = _number(d.get("score")) if isinstance(d, dict) else None
            if s is None:
                return None
            dims.append({"name": _name(d.get("name", "")), "reason": str(d.get("reason", "")),
                         "score": min(10.0, max(0.0, s))})
        cats.append({"name": _name(c.get("name", "")), "dimensions": dims,
                     "score": sum(d["score"] for d in dims) / len(dims)})
    overall = _number(obj.get("overall_score"))
    if overall is None:
        overall = sum(c["score"] for c in cats) / len(cats)
    return {"intent": str(obj.get("intent", "")), "categories": cats, "overall_score": min(10.0, max(0.0, overall))}


def flex_in_response_terms(flex: dict, swap: bool) -> dict:
    """Flex result with A/B mapped back to response1/response2 (undoing a swapped order)."""
    def lab(letter):
        label = LETTER_LABEL[letter]
        return SWAP_LABEL[label] if swap else label

    def sc(x):
        return (x["score_b"], x["score_a"]) if swap else (x["score_a"], x["score_b"])

    cats = {}
    for c in flex["categories"]:
        s1, s2 = sc(c)
        cats[c["name"]] = {"winner": lab(c["winner"]), "score1": s1, "score2": s2,
                           "dimensions": {d["name"]: {"score1": sc(d)[0], "score2": sc(d)[1], "reason": d["reason"]}
                                          for d in c["dimensions"]}}
    return {"intent": flex["intent"], "categories": cats, "overall_winner": lab(flex["overall_winner"])}


# ---- running the LM ----------------------------------------------------------------------------
def prompt_batch(backbone, convs: list[Conversation]) -> Batch:
    """Left-padded prompts ending in the assistant header, ready to generate from."""
    return backbone.collate(convs, add_generation_prompt=True, padding_side="left")


def _device(backbone) -> torch.device:
    return next(backbone.lm.parameters()).device


@torch.no_grad()
def sample(backbone, batch: Batch, *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Generated token ids [B, T] (pad after the end-of-turn token); greedy when temperature is 0.

    Our own loop over the LM's KV cache: sampling is Gumbel-max (exact softmax sampling),
    which on CPU costs a fraction of `torch.multinomial` over a 50k vocabulary, and the
    positions follow the attention mask so left padding is harmless.
    """
    tok = backbone.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    mask = batch.tensors["attention_mask"]
    B = mask.shape[0]
    if max_new_tokens <= 0:
        return torch.zeros((B, 0), dtype=torch.long, device=mask.device)
    lm = backbone.lm
    cache_kw = _cache_keyword(lm)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = lm(inputs_embeds=backbone.embed(batch), attention_mask=mask, position_ids=pos, use_cache=True,
             logits_to_keep=1)
    next_pos = pos[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool, device=mask.device)
    tokens = []
    for step in range(max_new_tokens):
        t = _pick(out.logits[:, -1].float(), temperature, top_p, generator)
        t = torch.where(done, torch.full_like(t, pad), t)
        tokens.append(t)
        done |= t == eos
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=mask.device)], 1)
        out = lm(input_ids=t[:, None], attention_mask=mask, position_ids=next_pos, use_cache=True, logits_to_keep=1,
                 **{cache_kw: _cache_of(out)})
        next_pos = next_pos + 1
    return torch.stack(tokens, 1)


def _cache_keyword(lm) -> str:
    """transformers 5 names the KV cache argument `cache`; 4.x named it `past_key_values`."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    noise = torch.empty_like(logits).exponential_(generator=generator)
    return (logits - noise.log()).argmax(-1)  # Gumbel-max: argmax(logits + Gumbel noise)


def completion_mask(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 for the tokens of each completion up to and including its first end token, 0 after."""
    is_eos = ids == eos_id
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0  # strictly after the first eos
    return (~after).long()


def strip_end(ids: torch.Tensor, mask: torch.Tensor, eos_id: int) -> list[list[int]]:
    """Completion ids per row without padding and without the end token."""
    return [[t for t, m in zip(row.tolist(), mrow.tolist()) if m and t != eos_id] for row, mrow in zip(ids, mask)]


def continuation_hidden(backbone, batch: Batch, cont: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run left-padded prompts followed by continuations (right-padded).

    Returns (hidden [B, T, H] at the positions that predict each continuation token, mask
    [B, T], last [B, H] the hidden state after the whole continuation, which predicts what
    comes next).
    """
    dev = batch.tensors["input_ids"].device
    B, P = batch.tensors["input_ids"].shape
    T = max((len(c) for c in cont), default=0)
    ids = torch.full((B, T), backbone.tokenizer.pad_token_id or 0, dtype=torch.long, device=dev)
    cmask = torch.zeros((B, T), dtype=torch.long, device=dev)
    for i, c in enumerate(cont):
        if c:
            ids[i, :len(c)] = torch.tensor(c, dtype=torch.long, device=dev)
            cmask[i, :len(c)] = 1
    prompt_embeds = backbone.embed(batch)
    embeds = torch.cat([prompt_embeds, backbone.lm.get_input_embeddings()(ids).to(prompt_embeds.dtype)], 1)
    mask = torch.cat([batch.tensors["attention_mask"], cmask], 1)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    hs = backbone.lm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).last_hidden_state
    lengths = cmask.sum(-1)
    last = hs[torch.arange(B, device=dev), P - 1 + lengths]
    return hs[:, P - 1:P - 1 + T], cmask, last


def token_logprobs(backbone, batch: Batch, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(ids[t] | prompt, ids[<t]) for each continuation token, [B, T] (0 where mask is 0)."""
    cont = [row[:int(m.sum())].tolist() for row, m in zip(ids, mask)]
    hs, _, _ = continuation_hidden(backbone, batch, cont)
    T = ids.shape[1]
    if hs.shape[1] < T:  # all rows shorter than the padded width
        hs = torch.nn.functional.pad(hs, (0, 0, 0, T - hs.shape[1]))
    logits = backbone.lm.get_output_embeddings()(hs).float()
    lp = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return lp * mask


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def option_token_ids(tokenizer, prefix: str, options: list[str]) -> list[int]:
    """The first token of each option when written right after `prefix` (must be distinct)."""
    base = _ids(tokenizer, prefix)
    out = []
    for o in options:
        full = _ids(tokenizer, prefix + o)
        if full[:len(base)] != base or len(full) == len(base):
            full = base + _ids(tokenizer, o)  # the tokenizer merged across the boundary
        out.append(full[len(base)])
    if len(set(out)) != len(out):
        raise ModelError(f"verdict options {options} share a first token after {prefix!r}; pick other options")
    return out


def verdict_probs(backbone, t: JudgeTemplate, batch: Batch, critiques: list[list[int] | str]) -> torch.Tensor:
    """Probabilities [B, 3] of (first shown, second shown, tie), read after critique + verdict
    prefix; an option the template does not offer (e.g. no tie) gets 0."""
    tok = backbone.tokenizer
    labels = [k for k in LABELS if k in t.options]
    opt_ids = option_token_ids(tok, t.verdict_prefix, [t.options[k] for k in labels])
    prefix = _ids(tok, t.verdict_prefix)
    cont = [(_ids(tok, c) if isinstance(c, str) else list(c)) + prefix for c in critiques]
    _, _, last = continuation_hidden(backbone, batch, cont)
    logits = backbone.lm.get_output_embeddings()(last).float()
    probs = torch.softmax(logits[:, opt_ids], -1)
    out = torch.zeros((probs.shape[0], len(LABELS)), dtype=probs.dtype, device=probs.device)
    out[:, [LABELS.index(k) for k in labels]] = probs
    return out


def score_probs(backbone, t: JudgeTemplate, batch: Batch, critiques: list[list[int] | str]) -> torch.Tensor:
    """Probabilities over the pointwise scores t.scores[0]..t.scores[1] [B, K].

    Scores written with several tokens ("10") share first tokens with others ("1"): those are
    told apart by one more step, which also asks whether the score ends there (the suffix).
    """
    tok = backbone.tokenizer
    lo, hi = t.scores
    values = list(range(lo, hi + 1))
    prefix = _ids(tok, t.verdict_prefix)
    seqs = []
    for v in values:
        full = _ids(tok, t.verdict_prefix + str(v) + t.verdict_suffix)
        seqs.append(full[len(prefix):] if full[:len(prefix)] == prefix else _ids(tok, str(v) + t.verdict_suffix))
    base = [(_ids(tok, c) if isinstance(c, str) else list(c)) + prefix for c in critiques]
    _, _, last = continuation_hidden(backbone, batch, base)
    first = torch.log_softmax(backbone.lm.get_output_embeddings()(last).float(), -1)  # [B, V]
    logp = torch.stack([first[:, s[0]] for s in seqs], -1)  # [B, K]
    groups: dict[int, list[int]] = {}
    for k, s in enumerate(seqs):
        groups.setdefault(s[0], []).append(k)
    for head, ks in groups.items():
        if len(ks) == 1:
            continue
        _, _, last2 = continuation_hidden(backbone, batch, [b + [head] for b in base])
        second = torch.log_softmax(backbone.lm.get_output_embeddings()(last2).float(), -1)
        for k in ks:
            logp[:, k] = logp[:, k] + second[:, seqs[k][1]]
    return torch.softmax(logp, -1)


def lm_loss(backbone, batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (assistant) tokens of an `lm_target` batch.

    The LM head runs only at labelled positions: full-vocabulary logits over whole sequences
    would dominate memory.
    """
    out = backbone(batch, need_hidden=True)
    target = batch.tensors["labels"][:, 1:]
    keep = target != -100
    if not keep.any():
        return out.hidden.sum() * 0.0
    logits = backbone.lm.get_output_embeddings()(out.hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, target[keep])


def decode(tokenizer, ids: list[list[int]]) -> list[str]:
    return tokenizer.batch_decode(ids, skip_special_tokens=True)
