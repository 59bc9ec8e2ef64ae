"""Flex answers that always parse: decoding constrained to the Flex JSON grammar.

A small judge rarely writes valid Flex JSON on its own. Here each sampling step masks the
tokens that would leave the grammar, with xgrammar (the structured-generation engine vLLM and
SGLang use: a compiled grammar gives a token bitmask per step in microseconds, it reads any HF
tokenizer, and it runs on the CPU). The grammar is written from the template: its fixed
categories in order (plus the personalised one when the record has criteria), 1 to
`dims` sub-dimensions each with a short name and reason, score pairs that sum to 10, and
per-category and overall winners. Every string is length-bounded, so the whole answer has a
known maximum length and `max_new_tokens` is raised to it: decoding always ends inside the grammar.
"""

from __future__ import annotations

import json

import torch

from omnireward.errors import DependencyError
from omnireward.judge.templates import JudgeTemplate

NAME_CHARS, REASON_CHARS, INTENT_CHARS = 24, 60, 80
DIMS = 2  # sub-dimensions per category, at most
_TEXT = r'[^"\\\x00-\x1f]'  # JSON string characters that need no escape
_PAIRS = [(a, 10 - a) for a in range(11)]
_WINNERS = ('"A"', '"B"', '"tie"')


def _lit(s: str) -> str:
    """An EBNF string literal for `s`."""
    return json.dumps(s)


def _string(n: int) -> str:
    return f'"\\"" {_TEXT}{{1,{n}}} "\\""'


def flex_grammar(template: JudgeTemplate, personalised: bool, dims: int | None = None) -> tuple[str, int]:
    """The EBNF grammar of one pairwise (or pointwise) Flex answer, and its maximum length in characters."""
    dims = dims or DIMS
    pointwise = template.format == "flex_pointwise"
    cats = list(template.categories) + ([template.personalised_category] if personalised else [])
    if not cats:
        cats = ["overall"]
    if pointwise:
        score = " | ".join(_lit(str(v)) for v in range(template.scores[0], template.scores[1] + 1))
        dim = '"{\\"name\\": " name ", \\"reason\\": " reason ", \\"score\\": " score "}"'
        tail = '", \\"overall_score\\": " score "}"'
        winner_part = ""
        max_score = max(len(str(v)) for v in range(template.scores[0], template.scores[1] + 1))
        dim_chars = len('{"name": , "reason": , "score": }') + NAME_CHARS + 2 + REASON_CHARS + 2 + max_score
        tail_chars = len(', "overall_score": }') + max_score
    else:
        pairs = " | ".join(_lit(f'"score_a": {a}, "score_b": {b}') for a, b in _PAIRS)
        winner = " | ".join(_lit(w) for w in _WINNERS)
        dim = '"{\\"name\\": " name ", \\"reason\\": " reason ", " pair "}"'
        tail = '", \\"overall_winner\\": " winner "}"'
        winner_part = ' ", \\"winner\\": " winner'
        dim_chars = (
            len('{"name": , "reason": , }') + NAME_CHARS + 2 + REASON_CHARS + 2 + len('"score_a": 10, "score_b": 0')
        )
        tail_chars = len(', "overall_winner": }') + len('"tie"')
    rules = [
        'root ::= "{\\"intent\\": " intent ", \\"categories\\": [" '
        + ' ", " '.join(f"cat{i}" for i in range(len(cats)))
        + ' "]" '
        + tail
    ]
    cat_chars = 0
    for i, c in enumerate(cats):
        head = _lit(f'{{"name": "{c}", "dimensions": [')
        rules.append(f'cat{i} ::= {head} dims "]"{winner_part} "}}"')
        cat_chars += len(f'{{"name": "{c}", "dimensions": [') + 2 + (len(', "winner": "tie"') if not pointwise else 0)
    rules.append(f'dims ::= dim ("," " " dim){{0,{dims - 1}}}')
    rules.append(f"dim ::= {dim}")
    rules.append(f"name ::= {_string(NAME_CHARS)}")
    rules.append(f"reason ::= {_string(REASON_CHARS)}")
    rules.append(f"intent ::= {_string(INTENT_CHARS)}")
    if pointwise:
        rules.append(f"score ::= {score}")
    else:
        rules.append(f"pair ::= {pairs}")
        rules.append(f"winner ::= {winner}")
    max_chars = (
        len('{"intent": , "categories": []')
        + INTENT_CHARS
        + 2
        + tail_chars
        + 2 * (len(cats) - 1)
        + cat_chars
        + len(cats) * (dims * dim_chars + 2 * (dims - 1))
    )
    return "\n".join(rules) + "\n", max_chars


def _xgr():
    try:
        import xgrammar
    except ImportError:
        raise DependencyError(
            "constrained Flex decoding needs xgrammar: pip install xgrammar (or score with --free-decoding)"
        ) from None
    return xgrammar


_COMPILERS: dict[tuple[int, int], object] = {}
_GRAMMARS: dict[tuple[int, int, str], object] = {}


def _compiled(tokenizer, vocab_size: int, grammar: str):
    xgr = _xgr()
    key = (id(tokenizer), vocab_size)
    if key not in _COMPILERS:
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=[tokenizer.eos_token_id]
        )
        _COMPILERS[key] = xgr.GrammarCompiler(info)
    gkey = (*key, grammar)
    if gkey not in _GRAMMARS:
        _GRAMMARS[gkey] = _COMPILERS[key].compile_grammar(grammar)
    return _GRAMMARS[gkey]


class GrammarConstraint:
    """A logits processor `(new ids [B, t], scores [B, V]) -> scores` keeping row i inside `grammars[i]`."""

    def __init__(self, tokenizer, grammars: list[str]):
        self.tokenizer = tokenizer
        self.grammars = grammars
        self.matchers = None
        self.done: list[bool] = []
        self.seen = 0

    def _start(self, vocab_size: int):
        xgr = _xgr()
        self.matchers = [xgr.GrammarMatcher(_compiled(self.tokenizer, vocab_size, g)) for g in self.grammars]
        self.done = [False] * len(self.grammars)
        self.bitmask = xgr.allocate_token_bitmask(len(self.grammars), vocab_size)

    def __call__(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        xgr = _xgr()
        if self.matchers is None:
            self._start(scores.shape[-1])
        for t in range(self.seen, ids.shape[1]):  # feed the tokens chosen since the last call
            for i, m in enumerate(self.matchers):
                if not self.done[i]:
                    m.accept_token(int(ids[i, t]))
                    self.done[i] = m.is_terminated()
        self.seen = ids.shape[1]
        for i, m in enumerate(self.matchers):
            if not self.done[i]:
                m.fill_next_token_bitmask(self.bitmask, i)
            else:  # finished rows: anything (the sampler pads them)
                self.bitmask[i] = -1
        scores = scores.clone()
        xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device))
        return scores


def constraint_for(backbone, template: JudgeTemplate, records, dims: int | None = None):
    """The grammar constraint for a batch of records judged with `template` (None for non-Flex templates),
    and the number of new tokens that always suffices to finish an answer."""
    if template.format not in ("flex", "flex_pointwise"):
        return None, 0
    grammars = [flex_grammar(template, bool((r.criteria or "").strip()), dims) for r in records]
    return GrammarConstraint(backbone.tokenizer, [g for g, _ in grammars]), max(n for _, n in grammars) + 1
