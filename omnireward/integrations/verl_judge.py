"""A served judge as verl's generative reward model: the chat-completions request and the user parser.

verl's reward loop (0.9.x, `verl/experimental/reward_loop/reward_loop.py` and its naive reward
manager) calls a generative reward model only through a custom reward function: the function
gets `reward_router_address` (host:port of the reward model servers) and posts an OpenAI chat
completions request to `http://{reward_router_address}/v1/chat/completions` (verl's genrm test
reward function, `tests/experimental/reward_loop/reward_fn.py`: `{"messages", "model",
"temperature", "top_p", "max_tokens"}`), then parses `choices[0].message.content` into a score.
`omnireward serve --model JUDGE_FOLDER` answers that request; this module holds both halves:

    judge_messages(prompt, response, reference)  the template's judge prompt as OpenAI messages
    judge_reward(answer)                          the answer text (or the whole response) -> float
    compute_judge_score(...)                      an async verl custom reward function using both

Convention of `judge_reward` for a pairwise template (omni, think, flex): the judged response
is the one shown as Response A (`judged="A"`); +1.0 when it wins, -1.0 when the other wins,
`tie` (0.0) for a tie and `unparsed` (0.0) when the text names no verdict. A pointwise template
(flex_pointwise) gives its overall 0-10 score. A response with several choices (`n` > 1) gives
the mean over its choices.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from omnireward.data.records import Item, Pair, Response
from omnireward.errors import ConfigError, RequestError
from omnireward.integrations.judge import post_json, prompt_and_criteria
from omnireward.judge.templates import JudgeTemplate, judge_conversation, load_template, pointwise_conversation
from omnireward.judge.verdicts import parse_flex_pointwise, parse_verdict

PROMPT_KEYS = ("prompt", "question")


def _template(template: str | JudgeTemplate) -> JudgeTemplate:
    return template if isinstance(template, JudgeTemplate) else load_template(template)


def _answer_texts(answer: Any) -> list[str]:
    """The answer texts of a string, an OpenAI chat-completions response dict, or its client object."""
    if isinstance(answer, str):
        return [answer]
    choices = answer.get("choices") if isinstance(answer, dict) else getattr(answer, "choices", None)
    if not isinstance(choices, (list, tuple)) or not choices:
        raise RequestError("expected the answer text or a chat-completions response with choices", field="answer")
    texts = []
    for i, c in enumerate(choices):
        message = c.get("message") if isinstance(c, dict) else getattr(c, "message", None)
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        if not isinstance(content, str):
            raise RequestError("expected a string", field=f"answer.choices[{i}].message.content")
        texts.append(content)
    return texts


def judge_reward(
    answer: Any, *, template: str | JudgeTemplate = "omni", judged: str = "A", tie: float = 0.0, unparsed: float = 0.0
) -> float:
    """The reward a judge's answer gives the judged response (see the module's convention)."""
    t = _template(template)
    if judged not in ("A", "B"):
        raise ConfigError(
            f"must be 'A' or 'B' (the position the judged response was shown in), got {judged!r}", field="judged"
        )
    values = []
    for text in _answer_texts(answer):
        if t.kind == "pointwise":
            flex = parse_flex_pointwise(text)
            values.append(flex["overall_score"] if flex else unparsed)
            continue
        letter = parse_verdict(text)
        values.append(unparsed if letter is None else tie if letter == "C" else 1.0 if letter == judged else -1.0)
    return sum(values) / len(values)


def _parts(parts: list) -> str | list[dict]:
    """A Turn's parts as OpenAI content: a string, or text and media parts (media by path or data: URI)."""
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    out = []
    for p in parts:
        if isinstance(p, str):
            if p:
                out.append({"type": "text", "text": p})
        else:
            kind = {"image": "image_url", "video": "video_url", "audio": "audio_url"}.get(p.type)
            if kind is None:
                raise RequestError(f"{p.type} media cannot be sent in a chat message", field="media")
            out.append({"type": kind, kind: {"url": p.path}})
    return out


def judge_messages(
    prompt: str,
    response: str | Response,
    reference: str | Response | None = None,
    *,
    template: str | JudgeTemplate = "omni",
    criteria: str | None = None,
    prompt_media=(),
    judged: str = "A",
) -> list[dict]:
    """The judge template's prompt as OpenAI chat messages: `response` shown as Response `judged`
    and `reference` as the other (pairwise), or `response` alone (pointwise)."""
    t = _template(template)
    as_response = lambda r: r if isinstance(r, Response) else Response(text=str(r))  # noqa: E731
    if t.kind == "pointwise":
        item = Item(
            id="0",
            task="text_to_text",
            prompt=prompt,
            response=as_response(response),
            criteria=criteria,
            prompt_media=list(prompt_media),
        )
        conv = pointwise_conversation(t, item)
    else:
        if reference is None:
            raise RequestError(f"a pairwise judge ({t.name}) compares the response with a reference", field="reference")
        pair = Pair(
            id="0",
            task="text_to_text",
            prompt=prompt,
            response1=as_response(response),
            response2=as_response(reference),
            criteria=criteria,
            prompt_media=list(prompt_media),
        )
        conv = judge_conversation(t, pair, swap=judged == "B")
    return [{"role": turn.role, "content": _parts(turn.parts)} for turn in conv]


def _prompt_of(extra: dict, key: str | None) -> str:
    for k in (key,) if key else PROMPT_KEYS:
        if extra.get(k) is not None:
            return prompt_and_criteria(extra[k], f"extra_info.{k}")[0]
    raise RequestError(
        "no prompt to judge the response against; add it in the dataset's preprocessing",
        field=f"extra_info.{key or 'prompt'}",
    )


async def compute_judge_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: Any = None,
    extra_info: dict | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any = None,
    *,
    url: str | None = None,
    template: str | JudgeTemplate = "omni",
    reference_key: str = "reference",
    prompt_key: str | None = None,
    criteria: str | None = None,
    both_orders: bool = False,
    max_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    n: int = 1,
    seed: int | None = None,
    model: str = "omnireward-judge",
    api_key: str | None = None,
    timeout: float = 300.0,
    **kwargs: Any,
) -> float:
    """verl custom reward function: the judge's reward for `solution_str` (see `judge_reward`).

    The server is `url` (e.g. http://127.0.0.1:8000), else verl's `reward_router_address`, else
    $OMNIREWARD_JUDGE_URL. The prompt comes from `extra_info` (`prompt_key`, "prompt", "question");
    a pairwise judge compares with `extra_info[reference_key]`, else `ground_truth` when it is a
    string. `both_orders` asks twice (the response as A, then as B) and averages.
    """
    base = url or (
        f"http://{reward_router_address}" if reward_router_address else os.environ.get("OMNIREWARD_JUDGE_URL")
    )
    if not base:
        raise ConfigError("no judge server: pass url= (reward_kwargs.url) or set OMNIREWARD_JUDGE_URL", field="url")
    t = _template(template)
    extra = dict(extra_info or {})
    prompt = _prompt_of(extra, prompt_key)
    reference = extra.get(reference_key)
    if reference is None and isinstance(ground_truth, str) and ground_truth.strip():
        reference = ground_truth
    if t.kind == "pairwise" and not (isinstance(reference, str) and reference.strip()):
        raise RequestError(
            f"a pairwise judge needs a reference response: add extra_info['{reference_key}'] or a string ground_truth",
            field=f"extra_info.{reference_key}",
        )
    crit = criteria if criteria is not None else extra.get("criteria")
    key = api_key if api_key is not None else os.environ.get("OMNIREWARD_API_KEY")
    orders = ("A", "B") if both_orders and t.kind == "pairwise" else ("A",)

    def ask(judged: str) -> float:
        body = {
            "model": model,
            "messages": judge_messages(prompt, solution_str or "", reference, template=t, criteria=crit, judged=judged),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "n": n,
        }
        if seed is not None:
            body["seed"] = seed
        answer = post_json(f"{base.rstrip('/')}/v1/chat/completions", body, api_key=key, timeout=timeout)
        return judge_reward(answer, template=t, judged=judged)

    values = await asyncio.gather(*(asyncio.to_thread(ask, j) for j in orders))
    return sum(values) / len(values)
