"""TRL preference data: `prompt`, `chosen`, `rejected`, optional `margin` and `images`.

Plain strings or conversations (lists of `{role, content}`), with an explicit prompt or the
implicit-prompt form where chosen and rejected are whole conversations sharing a prefix
(the shared prefix is the prompt). A system message stays part of the prompt (rendered
as `System: ...`): in TRL data it instructs the policy, it is not a judging criterion.
`chosen` becomes `response1` with preference `response1` (prep can shuffle sides).
"""

from __future__ import annotations

from typing import Any

from omnireward.data.formats.common import (
    Source,
    file_reader,
    prompt_from_messages,
    record_id,
    type_name,
)
from omnireward.data.records import Pair, Response, infer_task
from omnireward.errors import DataFormatError

ROLES = ("system", "user", "assistant")


def convert(raw: dict, line: int | None, source: Source) -> Pair:
    """One TRL record as a native Pair (chosen → response1)."""
    for key in ("chosen", "rejected"):
        if raw.get(key) is None:
            raise DataFormatError("missing response", field=key)
    prompt_raw = raw.get("prompt")
    chosen, rejected = raw["chosen"], raw["rejected"]
    if prompt_raw is None and isinstance(chosen, list) and isinstance(rejected, list):
        c, r = _messages(chosen, "chosen"), _messages(rejected, "rejected")
        n = _shared_prefix(c, r)
        prompt_msgs, c, r = c[:n], c[n:], r[n:]
    else:
        prompt_msgs = [] if prompt_raw is None else _prompt(prompt_raw)
        c, r = _side(chosen, "chosen"), _side(rejected, "rejected")
    texts = [_response(c, "chosen"), _response(r, "rejected")]
    prompt_media = [source.media("image", p, f"images[{i}]") for i, p in enumerate(_paths(raw, "images"))]
    margin = raw.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise DataFormatError(f"expected a number, got {type_name(margin)}", field="margin")
    r1, r2 = Response(text=texts[0]), Response(text=texts[1])
    return Pair(
        id=record_id(raw, line, source),
        task=infer_task(prompt_media, [r1, r2]),
        prompt=prompt_from_messages(prompt_msgs) if prompt_msgs else "",
        response1=r1,
        response2=r2,
        preference="response1",
        prompt_media=prompt_media,
        margin=float(margin) if margin is not None else None,
        meta={"messages": prompt_msgs} if len(prompt_msgs) > 1 else {},
    )


def _prompt(value: Any) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        msgs = _messages(value, "prompt")
        if not msgs:
            raise DataFormatError("empty conversation", field="prompt")
        return msgs
    raise DataFormatError(f"expected a string or a list of messages, got {type_name(value)}", field="prompt")


def _side(value: Any, key: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, list):
        return _messages(value, key)
    raise DataFormatError(f"expected a string or a list of messages, got {type_name(value)}", field=key)


def _messages(value: list, key: str) -> list[dict]:
    out = []
    for i, m in enumerate(value):
        f = f"{key}[{i}]"
        if not isinstance(m, dict):
            raise DataFormatError(f"expected a message object with 'role' and 'content', got {type_name(m)}", field=f)
        role = m.get("role")
        if role not in ROLES:
            raise DataFormatError(f"unknown role {role!r} (expected system, user or assistant)", field=f + ".role")
        out.append({"role": role, "content": _content(m.get("content"), f + ".content")})
    return out


def _content(value: Any, field: str) -> str:
    """Message content: a string, or a list of parts whose text parts are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict):
                raise DataFormatError(f"expected a content part object, got {type_name(part)}", field=f"{field}[{j}]")
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise DataFormatError(f"expected a string or a list of parts, got {type_name(value)}", field=field)


def _shared_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return n


def _response(msgs: list[dict], key: str) -> str:
    if not msgs:
        raise DataFormatError("missing response (nothing after the shared prompt)", field=key)
    text = "\n\n".join(m["content"] for m in msgs)
    if not text.strip():
        raise DataFormatError("empty response", field=key)
    return text


def _paths(raw: dict, key: str) -> list:
    v = raw.get(key)
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list):
        raise DataFormatError(f"expected a list of paths, got {type_name(v)}", field=key)
    return v


read = file_reader(convert, "Image paths in `images` resolve against the file's folder, or `media_root` when given.")
