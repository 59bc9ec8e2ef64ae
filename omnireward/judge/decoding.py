"""Running a judge LM through the backbone contract: prompts, completions, log-probabilities, verdicts.

Written only against `Backbone` (backbones/base.py): `processor`, `hidden_states` over a prompt
plus continuation tokens, `logits`, `sample`. So every backbone family judges, trains by SFT,
GRPO and DPO with the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from omnireward.backbones.base import Batch, Conversation
from omnireward.errors import ModelError
from omnireward.judge.templates import LABELS, JudgeTemplate


def prompt_batch(backbone, convs: list[Conversation]) -> Batch:
    """Left-padded prompts ending in the assistant header, ready to generate from."""
    return backbone.processor(convs, add_generation_prompt=True, padding_side="left")


def completion_mask(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 for the tokens of each completion up to and including its first end token, 0 after."""
    is_eos = ids == eos_id
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0  # strictly after the first eos
    return (~after).long()


def strip_end(ids: torch.Tensor, mask: torch.Tensor, eos_id: int) -> list[list[int]]:
    """Completion ids per row without padding and without the end token."""
    return [[t for t, m in zip(row.tolist(), mrow.tolist()) if m and t != eos_id] for row, mrow in zip(ids, mask)]


def decode(tokenizer, ids: list[list[int]]) -> list[str]:
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def pad_continuations(backbone, cont: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded continuation ids [B, T] and their mask."""
    T = max((len(c) for c in cont), default=0)
    pad = backbone.tokenizer.pad_token_id or 0
    ids = torch.full((len(cont), T), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(cont), T), dtype=torch.long, device=device)
    for i, c in enumerate(cont):
        if c:
            ids[i, : len(c)] = torch.tensor(c, dtype=torch.long, device=device)
            mask[i, : len(c)] = 1
    return ids, mask


def continuation_hidden(
    backbone, batch: Batch, cont: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run left-padded prompts followed by continuations (right-padded).

    Returns (hidden [B, T, H] at the positions that predict each continuation token, mask
    [B, T], last [B, H] the hidden state after the whole continuation, which predicts what
    comes next).
    """
    dev = batch.tensors["input_ids"].device
    B, P = batch.tensors["input_ids"].shape
    ids, cmask = pad_continuations(backbone, cont, dev)
    T = ids.shape[1]
    hs = backbone.hidden_states(batch, ids, cmask)
    last = hs[torch.arange(B, device=dev), P - 1 + cmask.sum(-1)]
    return hs[:, P - 1 : P - 1 + T], cmask, last


def token_logprobs(backbone, batch: Batch, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(ids[t] | prompt, ids[<t]) for each continuation token, [B, T] (0 where mask is 0)."""
    cont = [row[: int(m.sum())].tolist() for row, m in zip(ids, mask)]
    hs, _, _ = continuation_hidden(backbone, batch, cont)
    T = ids.shape[1]
    if hs.shape[1] < T:  # all rows shorter than the padded width
        hs = F.pad(hs, (0, 0, 0, T - hs.shape[1]))
    lp = torch.log_softmax(backbone.logits(hs).float(), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return lp * mask


def target_logprobs(backbone, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of an `lm_target` batch's labelled (assistant) tokens.

    Returns (logp [B, L-1], mask [B, L-1]); the LM head runs only at labelled positions, since
    full-vocabulary logits over whole sequences would dominate memory.
    """
    hs = backbone.hidden_states(batch)
    target = batch.tensors["labels"][:, 1:]
    keep = target != -100
    logp = torch.zeros(target.shape, dtype=torch.float32, device=hs.device)
    if keep.any():
        logits = backbone.logits(hs[:, :-1][keep]).float()
        logp[keep] = torch.log_softmax(logits, -1).gather(-1, target[keep].unsqueeze(-1)).squeeze(-1)
    else:
        logp = logp + hs.sum() * 0.0  # keeps the graph (and DDP's view of used parameters)
    return logp, keep.long()


def lm_loss(backbone, batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (assistant) tokens of an `lm_target` batch."""
    logp, mask = target_logprobs(backbone, batch)
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def option_token_ids(tokenizer, prefix: str, options: list[str]) -> list[int]:
    """The first token of each option when written right after `prefix` (must be distinct)."""
    base = _ids(tokenizer, prefix)
    out = []
    for o in options:
        full = _ids(tokenizer, prefix + o)
        if full[: len(base)] != base or len(full) == len(base):
            full = base + _ids(tokenizer, o)  # the tokenizer merged across the boundary
        out.append(full[len(base)])
    if len(set(out)) != len(out):
        raise ModelError(f"verdict options {options} share a first token after {prefix!r}; pick other options")
    return out


def cut_at_anchor(tokenizer, t: JudgeTemplate, ids: list[int]) -> list[int] | None:
    """A critique's tokens up to and including its own last verdict anchor ("[[", "<answer>"), when it
    wrote one followed by an option; None when it wrote none. A trained judge writes its verdict
    itself: reading the option there keeps the probabilities consistent with what it wrote."""
    anchor = t.verdict_anchor
    text = tokenizer.decode(ids, skip_special_tokens=True)
    at = text.rfind(anchor)
    if at < 0 or not any(text[at + len(anchor) :].lstrip().startswith(o) for o in t.options.values()):
        return None
    end = at + len(anchor)
    for k in range(len(ids), 0, -1):  # walk back to the token that ends exactly at the anchor
        head = tokenizer.decode(ids[:k], skip_special_tokens=True)
        if len(head) == end:
            return list(ids[:k])
        if len(head) < end:
            return None  # the anchor shares a token with what follows it: read after the prefix instead
    return None


def _verdict_continuations(backbone, t: JudgeTemplate, critiques: list[list[int] | str]) -> list[list[int]]:
    """Each critique followed by the verdict prefix, or cut at its own verdict anchor when it wrote one."""
    tok = backbone.tokenizer
    prefix = _ids(tok, t.verdict_prefix)
    out = []
    for c in critiques:
        ids = _ids(tok, c) if isinstance(c, str) else list(c)
        own = cut_at_anchor(tok, t, ids) if ids else None
        out.append(own if own is not None else ids + prefix)
    return out


def verdict_probs(backbone, t: JudgeTemplate, batch: Batch, critiques: list[list[int] | str]) -> torch.Tensor:
    """Probabilities [B, 3] of (first shown, second shown, tie), read after critique + verdict
    prefix (or where the critique wrote its own verdict); an option the template does not offer
    (e.g. no tie) gets 0."""
    tok = backbone.tokenizer
    labels = [k for k in LABELS if k in t.options]
    opt_ids = option_token_ids(tok, t.verdict_prefix, [t.options[k] for k in labels])
    cont = _verdict_continuations(backbone, t, critiques)
    _, _, last = continuation_hidden(backbone, batch, cont)
    probs = torch.softmax(backbone.logits(last).float()[:, opt_ids], -1)
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
    prefix = _ids(tok, t.verdict_prefix)
    seqs = []
    for v in range(lo, hi + 1):
        full = _ids(tok, t.verdict_prefix + str(v) + t.verdict_suffix)
        seqs.append(full[len(prefix) :] if full[: len(prefix)] == prefix else _ids(tok, str(v) + t.verdict_suffix))
    base = [(_ids(tok, c) if isinstance(c, str) else list(c)) + prefix for c in critiques]
    _, _, last = continuation_hidden(backbone, batch, base)
    first = torch.log_softmax(backbone.logits(last).float(), -1)  # [B, V]
    logp = torch.stack([first[:, s[0]] for s in seqs], -1)  # [B, K]
    groups: dict[int, list[int]] = {}
    for k, s in enumerate(seqs):
        groups.setdefault(s[0], []).append(k)
    for head, ks in groups.items():
        if len(ks) == 1:
            continue
        _, _, last2 = continuation_hidden(backbone, batch, [b + [head] for b in base])
        second = torch.log_softmax(backbone.logits(last2).float(), -1)
        for k in ks:
            logp[:, k] = logp[:, k] + second[:, seqs[k][1]]
    return torch.softmax(logp, -1)
