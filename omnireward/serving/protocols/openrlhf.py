"""OpenRLHF's remote reward model protocol (`--reward.remote_url http://HOST:PORT/get_reward`).

    POST /get_reward  {"query": [str], "prompts": [str]?, "labels": [...]?, "criteria": str?}
                      -> {"rewards": [float], "scores": [float], "extra_logs": {"reward_normalized": [float]}}

OpenRLHF posts `query[i]`, the policy's prompt + response decoded as one string, and `prompts[i]`,
the prompt as it was given to the policy. The response is what follows the prompt when the
prompt is a prefix of the query (else where the prompt occurs in it); without a usable prompt, a
chat-templated query is split at its last assistant turn, and anything else is scored whole as
the response to an empty prompt. Chat markers (ChatML, Llama 3, Gemma, Mistral, Phi-3) come off the
prompt, trailing end-of-turn tokens off the response; a policy's default system prompt is not
criteria (see omnireward.serving.chat and --system-prompt-as-criteria). An empty `query` list
gets empty lists back.

`rewards` are the raw rewards, equal to what `/score` gives the native record
`{"prompt", "response"}`; `scores` are the rewards on [0, 1]: sigmoid((reward - mean) / std) with
the model folder's reward statistics (OpenRLHF uses them for dynamic filtering); `labels` (the
dataset's reference answers) are accepted and not used. `criteria` is an omnireward extension:
one criterion for every query. An ensemble server (`serve --model A --model B`) returns the
combined reward and adds `extra_logs.reward_ensemble_std`, the members' standard deviation.
"""

from __future__ import annotations

from typing import Any

from omnireward.data.records import Item, Response
from omnireward.errors import RequestError
from omnireward.serving.chat import conversation_fields
from omnireward.serving.media import Lease
from omnireward.serving.protocols import Context, Parsed, check_count


def split_query(
    query: str, prompt: str | None, default_system: str | None = None, system_prompt_as_criteria: str = "auto"
) -> tuple[str, str, str | None]:
    """(prompt, response, criteria from a system turn) of one OpenRLHF query."""
    mode = system_prompt_as_criteria
    if prompt:
        start = 0 if query.startswith(prompt) else -1
        head = prompt
        if start < 0 and prompt.strip():
            head = prompt.strip()
            start = query.find(head)
        if start >= 0:
            fields = conversation_fields(
                head, query[start + len(head) :], default_system=default_system, system_prompt_as_criteria=mode
            )
            return fields.prompt, fields.response or "", fields.criteria
    fields = conversation_fields(query, default_system=default_system, system_prompt_as_criteria=mode)
    return fields.prompt, fields.response or "", fields.criteria


def _strings(value: Any, name: str, n: int | None = None) -> list[str]:
    if not isinstance(value, list):
        raise RequestError("expected a list of strings", field=name)
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise RequestError(f"expected a string, got {type(v).__name__}", field=f"{name}[{i}]")
    if n is not None and len(value) != n:
        raise RequestError(f"has {len(value)} entries but query has {n}", field=name)
    return value


def items_from(
    queries: list[str],
    prompts: list[str] | None,
    criteria: str | None,
    default_system: str | None,
    system_prompt_as_criteria: str = "auto",
) -> list[Item]:
    """One native item per query (shared by the route and the in-process reward_func)."""
    items = []
    for i, q in enumerate(queries):
        p, r, system = split_query(q, prompts[i] if prompts else None, default_system, system_prompt_as_criteria)
        items.append(
            Item(
                id=str(i),
                task="text_to_text",
                prompt=p,
                response=Response(text=r),
                criteria=criteria if criteria is not None else system,
            )
        )
    return items


def parse(body: Any, lease: Lease, ctx: Context) -> Parsed:
    if not isinstance(body, dict):
        raise RequestError('expected an object {"query": [...], "prompts": [...]}', field="body")
    if "query" not in body:
        raise RequestError("missing (a list of prompt + response strings)", field="query")
    queries = _strings(body["query"], "query")
    check_count(len(queries), ctx, "query")
    prompts = body.get("prompts")
    prompts = _strings(prompts, "prompts", len(queries)) if prompts is not None else None
    labels = body.get("labels")
    if labels is not None and not isinstance(labels, list):
        raise RequestError("expected a list (one label per query) or null", field="labels")
    criteria = body.get("criteria")
    if criteria is not None and not isinstance(criteria, str):
        raise RequestError("expected a string", field="criteria")
    items = items_from(queries, prompts, criteria, ctx.default_system, ctx.system_prompt_as_criteria)
    return Parsed(items, [f"query[{i}]" for i in range(len(items))])


def respond(lines: list[dict], parsed: Parsed | None, ctx: Context) -> dict:
    rewards = [line["reward"] for line in lines]
    logs = {"reward_normalized": [ctx.scale.normalized(r) for r in rewards]}
    if lines and "ensemble" in lines[0]:  # an ensemble: the members' spread, logged beside the reward
        logs["reward_ensemble_std"] = [line["ensemble"]["std"] for line in lines]
    return {"rewards": rewards, "scores": [ctx.scale.unit(r) for r in rewards], "extra_logs": logs}
