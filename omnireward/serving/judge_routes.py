"""The judge server's routes: OpenAI chat completions (as verl's reward loop and the judges' own
serving scripts post them) and native judging.

    POST /v1/chat/completions  {"model"?, "messages": [...], "max_tokens"?, "temperature"?, "top_p"?,
                                "n"?, "seed"?}
                               -> {"id", "object": "chat.completion", "created", "model",
                                   "choices": [{"index", "message": {"role": "assistant", "content"},
                                                "finish_reason", "verdict", "verdict_probs"}], "usage",
                                   "vote" (n > 1)}
    POST /judge                [pair, ...] or {"pairs"|"records": [...], "both_orders"?: bool, "n"?,
                                "temperature"?, "top_p"?, "seed"?}
                               -> {"results": [one `omnireward score --judge` line per record]}

Messages follow the OpenAI chat format: `content` is a string or a list of parts, `text`,
`image_url`, `video_url`, `audio_url` (a base64 `data:` URI or a path under the media root) or
`input_audio` ({"data": base64, "format": "wav"}); media stay where they stand in the turn. The
answer's `content` is the critique and the verdict in the template's output form; `verdict`
(A|B|C) and `verdict_probs` (the option probabilities where the verdict is read) come with each
choice of a pairwise judge, `score` (expected 0-10) with a pointwise one. `max_tokens` (or
`max_completion_tokens`) defaults to the server's --max-new-tokens; a Flex judge raises it to what
its grammar needs to finish. Greedy unless `temperature` > 0; a request with `seed` samples the
same answer whatever else the server is doing. With `n` > 1 the answer adds `vote`: the choices'
majority `verdict` (a tie in votes goes to the higher mean probability), `votes` per letter,
`agreement` (the share of choices that gave the majority verdict) and the mean `verdict_probs`
(pointwise: the mean `score`); send `temperature` > 0, or the n choices are the same greedy answer.

/judge with `n` K > 1 judges as `omnireward score --judge --samples K`: K sampled critiques per
record (and per order with both_orders), `temperature` 1.0 unless given, `top_p`, and `seed` (0
unless given) seeding each record by its id, so a request judged again gives the same lines.
Lines add samples, votes, agreement and critiques. With n = 1 (the default) judging is greedy.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from omnireward.backbones.base import Turn
from omnireward.data.records import Item, Pair
from omnireward.errors import RequestError
from omnireward.scoring.judge import Sampling
from omnireward.serving.judge_work import ChatWork, PairWork
from omnireward.serving.media import Lease, content_parts
from omnireward.serving.protocols import Context, Parsed, check_count
from omnireward.serving.protocols.native import native_record

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_N = 64
MAX_TOKENS = 32768
# Fields OpenAI clients may send that would change the answer and that this server does not do.
UNSUPPORTED = {
    "stream": "streaming",
    "tools": "tool calls",
    "functions": "function calls",
    "logprobs": "logprobs",
    "stop": "stop sequences",
    "response_format": "response formats (the template fixes the answer's form)",
}


def turn(msg: Any, lease: Lease, field: str) -> Turn:
    """One OpenAI-format chat message as a Turn, its text and media in reading order."""
    if not isinstance(msg, dict):
        raise RequestError("expected a message object with role and content", field=field)
    role = msg.get("role")
    if role not in ROLES:
        raise RequestError(f"unknown role {role!r} (system, developer, user or assistant)", field=field + ".role")
    content = msg.get("content")
    if content is None:
        content = ""
    if isinstance(content, str):
        return Turn(ROLES[role], [content])
    if not isinstance(content, list):
        raise RequestError("expected a string or a list of content parts", field=field + ".content")
    parts = content_parts(content, lease, field + ".content")
    return Turn(ROLES[role], parts)


def _number(body: dict, key: str, default, lo: float, hi: float, *, integer: bool = False):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise RequestError(f"expected {'an integer' if integer else 'a number'}, got {value!r}", field=key)
    if not lo <= value <= hi:
        raise RequestError(f"must be between {lo:g} and {hi:g}, got {value!r}", field=key)
    return value


def parse_chat(body: Any, lease: Lease, ctx: Context, *, default_max_tokens: int = 256) -> Parsed:
    if not isinstance(body, dict):
        raise RequestError("expected a JSON object with messages", field="body")
    for key, what in UNSUPPORTED.items():
        if body.get(key) not in (None, False, [], ""):
            raise RequestError(f"{what} are not supported by the judge server", field=key)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("expected a non-empty list of chat messages", field="messages")
    conv = [turn(m, lease, f"messages[{i}]") for i, m in enumerate(messages)]
    if not any(t.role == "user" for t in conv):
        raise RequestError("needs at least one user message", field="messages")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    work = ChatWork(
        conv,
        n=_number(body, "n", 1, 1, min(MAX_N, ctx.max_records), integer=True),
        max_tokens=_number(body, key, default_max_tokens, 1, MAX_TOKENS, integer=True),
        temperature=float(_number(body, "temperature", 0.0, 0.0, 2.0)),
        top_p=float(_number(body, "top_p", 1.0, 1e-6, 1.0)),
        seed=_number(body, "seed", None, -(2**63), 2**64 - 1, integer=True),
    )
    if work.seed is not None:
        work.seed %= 2**63
    model = body.get("model")
    return Parsed([work], ["messages"], {"model": model if isinstance(model, str) and model else ctx.model_name})


def respond_chat(answers: list[dict], parsed: Parsed, ctx: Context) -> dict:
    answer = answers[0]
    choices = []
    for i, c in enumerate(answer["choices"]):
        choice = {
            "index": i,
            "message": {"role": "assistant", "content": c["text"]},
            "finish_reason": c["finish_reason"],
            "logprobs": None,
        }
        for key in ("verdict", "verdict_probs", "score"):
            if key in c:
                choice[key] = c[key]
        choices.append(choice)
    completion = sum(c["completion_tokens"] for c in answer["choices"])
    vote = {"vote": answer["vote"]} if "vote" in answer else {}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": parsed.extra["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": answer["prompt_tokens"],
            "completion_tokens": completion,
            "total_tokens": answer["prompt_tokens"] + completion,
        },
        **vote,
    }


def parse_judge(body: Any, lease: Lease, ctx: Context, *, kind: str = "pairwise") -> Parsed:
    sampling = None
    if isinstance(body, dict):
        key = "pairs" if "pairs" in body else "records"
        raw = body.get(key)
        both = body.get("both_orders", False)
        if not isinstance(both, bool):
            raise RequestError(f"expected true or false, got {both!r}", field="both_orders")
        sampling = _judge_sampling(body, ctx)
    else:
        key, raw, both = "pairs", body, False
    if not isinstance(raw, list):
        raise RequestError('expected a list of pairs (or {"pairs": [...]})', field=key)
    if not raw:  # an empty request gets an empty answer, as on the reward routes
        return Parsed([], [])
    check_count(len(raw), ctx, key)
    where = [f"{key}[{i}]" for i in range(len(raw))]
    works = []
    for i, (r, w) in enumerate(zip(raw, where)):
        record = native_record(r, lease, w, str(i))
        want = Pair if kind == "pairwise" else Item
        if not isinstance(record, want):
            what = "pairs (response1, response2)" if want is Pair else "items (response)"
            raise RequestError(f"a {kind} judge judges {what}, not a {type(record).__name__.lower()}", field=w)
        works.append(PairWork(record, both_orders=both, sampling=sampling))
    return Parsed(works, where)


def _judge_sampling(body: dict, ctx: Context) -> Sampling | None:
    """/judge's `n` sampled judgements per record (None: one greedy judgement)."""
    n = _number(body, "n", 1, 1, min(MAX_N, ctx.max_records), integer=True)
    if n == 1:
        for key in ("temperature", "top_p", "seed"):
            if body.get(key) is not None:
                raise RequestError(f"{key} applies to sampled judgements: send n > 1 with it", field=key)
        return None
    return Sampling(
        n,
        temperature=float(_number(body, "temperature", 1.0, 1e-6, 2.0)),
        top_p=float(_number(body, "top_p", 1.0, 1e-6, 1.0)),
        seed=_number(body, "seed", 0, 0, 2**63 - 1, integer=True),
    )


def respond_judge(lines: list[dict], parsed: Parsed, ctx: Context) -> dict:
    return {"results": lines}


def judge_routes(max_new_tokens: int = 256, kind: str = "pairwise") -> dict:
    """The routes of a judge server whose critiques default to `max_new_tokens` and whose template is `kind`."""

    def chat(body, lease, ctx):
        return parse_chat(body, lease, ctx, default_max_tokens=max_new_tokens)

    def judge(body, lease, ctx):
        return parse_judge(body, lease, ctx, kind=kind)

    return {
        "/v1/chat/completions": (chat, respond_chat, "OpenAI chat completions: the judge's critique and verdict"),
        "/judge": (
            judge,
            respond_judge,
            f"native {'pairs' if kind == 'pairwise' else 'items'} -> verdict, "
            "p_response1, critique (as omnireward score --judge)",
        ),
    }
