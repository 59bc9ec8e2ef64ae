"""vLLM's pooling API shape, as verl's reward loop posts it to a reward model server.

    POST /classify  {"model"?, "input": str | [str | [message, ...]], "use_activation"?: bool}
                    or {"model"?, "messages": [message, ...]}
                    -> {"id", "object": "list", "created", "model",
                        "data": [{"index", "label": "reward", "probs": [p], "num_classes": 1}]}
    POST /pooling   same request -> {"data": [{"index", "object": "pooling", "data": [reward]}], ...}

verl applies the reward model's chat template to the conversation, strips its bos_token, and
posts the text with `"use_activation": false`, then reads `data[-1].probs[-1]`. Templated text is
read by omnireward.serving.chat (the formats and system-prompt rules every route shares); an
empty `input` list gets an empty `data` list. A templated string is split back into
criteria (system turn), prompt and response (last assistant turn); plain text is scored as the
response to an empty prompt. Messages follow the OpenAI chat format; content parts may be
`text`, `image_url`, `video_url`, `audio_url` (a base64 `data:` URI or a path under the media
root) or `input_audio` ({"data": base64, "format": "wav"}); media in the last assistant turn
belong to the response, earlier ones to the prompt.

`probs` holds sigmoid(reward), as vLLM reports a one-label classifier, unless the request says
`"use_activation": false` (or the older `"activation": false` / `"softmax": false`): then it holds
the raw reward, the value `/score` gives. `/pooling` returns the raw reward unless activation is
asked for. `model` is echoed back; any name is accepted.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from omnireward.data.records import Item, Media, Response, infer_task
from omnireward.errors import RequestError
from omnireward.serving.chat import conversation_fields, fields_from_messages
from omnireward.serving.media import Lease, content_parts
from omnireward.serving.protocols import Context, Parsed, check_count
from omnireward.serving.scale import sigmoid


def _message(msg: Any, lease: Lease, field: str) -> tuple[dict, list[Media]]:
    """A text message and its media, from one OpenAI-format chat message."""
    if not isinstance(msg, dict):
        raise RequestError("expected a message object with role and content", field=field)
    role, content = msg.get("role"), msg.get("content")
    if role not in ("system", "user", "assistant", "tool"):
        raise RequestError(f"unknown role {role!r} (system, user, assistant or tool)", field=field + ".role")
    if content is None:
        content = ""
    if isinstance(content, str):
        return {"role": role, "content": content}, []
    if not isinstance(content, list):
        raise RequestError("expected a string or a list of content parts", field=field + ".content")
    parts = content_parts(content, lease, field + ".content")
    texts = [p for p in parts if isinstance(p, str)]
    media = [p for p in parts if not isinstance(p, str)]
    return {"role": role, "content": "".join(texts)}, media


def conversation_item(messages: Any, lease: Lease, field: str, index: int, ctx: Context) -> Item:
    """One item from an OpenAI-format conversation whose last turn is the assistant's response."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("expected a non-empty list of messages", field=field)
    parsed = [_message(m, lease, f"{field}[{i}]") for i, m in enumerate(messages)]
    if parsed[-1][0]["role"] != "assistant":
        raise RequestError("the last message must be the assistant's response to score", field=field)
    fields = fields_from_messages(
        [m for m, _ in parsed],
        default_system=ctx.default_system,
        system_prompt_as_criteria=ctx.system_prompt_as_criteria,
    )
    prompt_media = [x for _, media in parsed[:-1] for x in media]
    response = Response(text=fields.response or "", media=parsed[-1][1])
    return Item(
        id=str(index),
        task=infer_task(prompt_media, [response]),
        prompt=fields.prompt,
        response=response,
        criteria=fields.criteria,
        prompt_media=prompt_media,
    )


def text_item(text: str, index: int, ctx: Context) -> Item:
    """One item from a string: a templated conversation split back, or plain text as the response."""
    fields = conversation_fields(
        text, default_system=ctx.default_system, system_prompt_as_criteria=ctx.system_prompt_as_criteria
    )
    return Item(
        id=str(index),
        task="text_to_text",
        prompt=fields.prompt,
        response=Response(text=fields.response or ""),
        criteria=fields.criteria,
    )


def activation(body: dict, default: bool) -> bool:
    for key in ("use_activation", "activation", "softmax"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, bool):
                raise RequestError("expected true or false", field=key)
            return value
    return default


def parse(body: Any, lease: Lease, ctx: Context, *, default_activation: bool = True) -> Parsed:
    if not isinstance(body, dict):
        raise RequestError('expected an object {"model", "input": [...]} or {"model", "messages": [...]}', field="body")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("expected a string", field="model")
    extra = {"model": model or ctx.model_name, "activation": activation(body, default_activation)}
    if "messages" in body:
        return Parsed([conversation_item(body["messages"], lease, "messages", 0, ctx)], ["messages"], extra)
    if "input" not in body:
        raise RequestError("missing (a string, a list of strings, or chat messages)", field="input")
    inputs = body["input"]
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], dict)):
        inputs = [inputs]  # one text, or one conversation
    if not isinstance(inputs, list):
        raise RequestError("expected a string, a list of strings, or chat messages", field="input")
    check_count(len(inputs), ctx, "input")
    items, where = [], []
    for i, x in enumerate(inputs):
        f = f"input[{i}]"
        if isinstance(x, str):
            items.append(text_item(x, i, ctx))
        elif isinstance(x, list) and x and isinstance(x[0], dict):
            items.append(conversation_item(x, lease, f, i, ctx))
        elif isinstance(x, int) or (isinstance(x, list) and x and isinstance(x[0], int)):
            raise RequestError("token ids are not accepted; send the text", field=f)
        else:
            raise RequestError(f"expected a string or a list of messages, got {type(x).__name__}", field=f)
        where.append(f)
    return Parsed(items, where, extra)


def _value(reward: float, parsed: Parsed) -> float:
    return sigmoid(reward) if parsed.extra["activation"] else reward


def respond_classify(lines: list[dict], parsed: Parsed, ctx: Context) -> dict:
    data = [
        {"index": i, "label": "reward", "probs": [_value(line["reward"], parsed)], "num_classes": 1}
        for i, line in enumerate(lines)
    ]
    return {
        "id": f"classify-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": parsed.extra["model"],
        "data": data,
    }


def respond_pooling(lines: list[dict], parsed: Parsed, ctx: Context) -> dict:
    data = [{"index": i, "object": "pooling", "data": [_value(line["reward"], parsed)]} for i, line in enumerate(lines)]
    return {
        "id": f"pool-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": parsed.extra["model"],
        "data": data,
    }
