"""LLaMA-Factory / Omni-RewardData sharegpt "ranking" files, and their `dataset_info.json` registry.

A record has `conversations` (turns `{from: human|gpt|system, value}`), `chosen` and
`rejected` (`{from, value}`), optional `system`, and optional `images` / `videos` / `audios`
lists. `chosen` becomes `response1` with preference `response1` (prep can shuffle sides).
A ranking of K > 2 responses gives `rejected` as a list, best first: the record becomes a group
(`responses` = chosen, then the rejected in their order; `ranking` = [0, 1, ..., K-1]), every
response kept.

Where the media go: `<image>`-style placeholders only mark positions in the prompt and are
removed from the text. When chosen and rejected texts are equal (generation tasks) the media
carry the preference: the list splits in halves, first half chosen, second half rejected (in K
equal parts for a ranking of K); if the prompt has N placeholders of that type, the first N
items of each part are the prompt's (taken from the first part). A list of two (K) lists is
(chosen media, rejected media, ...). Otherwise (text responses) every media item belongs to
the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from omnireward.data.formats.common import (
    Result,
    Source,
    convert_file,
    file_source,
    prompt_from_messages,
    record_id,
    type_name,
)
from omnireward.data.io import read_json_document
from omnireward.data.records import Group, Media, Pair, Response, infer_task
from omnireward.errors import DataFormatError

MEDIA_COLUMNS = {"image": "images", "video": "videos", "audio": "audios"}
DEFAULT_COLUMNS = {
    "messages": "conversations",
    "chosen": "chosen",
    "rejected": "rejected",
    "system": "system",
    **{c: c for c in MEDIA_COLUMNS.values()},
}
DEFAULT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}
PLACEHOLDER = {t: f"<{t}>" for t in MEDIA_COLUMNS}
REGISTRY_NAME = "dataset_info.json"
# Omni-RewardData subset names carry their task (`omni_t2i`, `omni_ti2t_rlaifv`, ...).
_SUBSET_TASK = {
    "t2t": "text_to_text",
    "ti2t": "text_image_to_text",
    "tv2t": "text_video_to_text",
    "ta2t": "text_audio_to_text",
    "t2i": "text_to_image",
    "t2v": "text_to_video",
    "t2a": "text_to_audio",
    "t23d": "text_to_3d",
    "ti2i": "text_image_to_image",
}
_SUBSET_RE = re.compile(r"^omni_(" + "|".join(_SUBSET_TASK) + r")(_|$)")


def is_registry(path: Path) -> bool:
    """True for a `dataset_info.json`-style registry (a file, or a folder holding one)."""
    if path.is_dir():
        return (path / REGISTRY_NAME).is_file()
    if path.suffix.lower() != ".json" or path.stat().st_size > 10_000_000:
        return False
    try:
        doc = read_json_document(path)
    except DataFormatError:
        return False
    return isinstance(doc, dict) and bool(doc) and all(isinstance(v, dict) and "file_name" in v for v in doc.values())


def read(
    path: Path,
    *,
    media_root: Path | None = None,
    allow_outside: bool = False,
    check_media: bool = False,
    columns: dict | None = None,
    tags: dict | None = None,
    task: str | None = None,
) -> Iterator[Result]:
    """Read one sharegpt ranking file, or every ranking dataset a registry lists that exists."""
    if is_registry(path):
        yield from read_registry(
            path / REGISTRY_NAME if path.is_dir() else path,
            media_root=media_root,
            allow_outside=allow_outside,
            check_media=check_media,
        )
        return
    yield from convert_file(
        path,
        file_source(path, media_root, allow_outside, check_media),
        partial(
            convert, columns={**DEFAULT_COLUMNS, **(columns or {})}, tags={**DEFAULT_TAGS, **(tags or {})}, task=task
        ),
    )


def read_registry(
    path: Path, *, media_root: Path | None = None, allow_outside: bool = False, check_media: bool = False
) -> Iterator[Result]:
    """The ranking + sharegpt entries of a registry whose files sit beside it (others are skipped)."""
    doc = read_json_document(path)
    found = []
    for name, entry in doc.items():
        if not entry.get("ranking") or entry.get("formatting", "alpaca") != "sharegpt":
            continue
        f = path.parent / str(entry["file_name"])
        if f.is_file():
            found.append((name, entry, f))
    if not found:
        raise DataFormatError(
            "none of the sharegpt ranking datasets this registry lists were found beside it", file=path
        )
    for name, entry, f in found:
        m = _SUBSET_RE.match(name)
        yield from read(
            f,
            media_root=media_root,
            allow_outside=allow_outside,
            check_media=check_media,
            columns=entry.get("columns"),
            tags=entry.get("tags"),
            task=_SUBSET_TASK[m.group(1)] if m else None,
        )


def convert(
    raw: dict, line: int | None, source: Source, *, columns: dict, tags: dict, task: str | None
) -> Pair | Group:
    """One ranking record as a native Pair (chosen → response1), or a Group when it ranks K > 2."""
    messages = _messages(raw, columns, tags)
    texts = [_response_text(raw, columns["chosen"], tags), *_rejected_texts(raw, columns["rejected"], tags)]
    generation = all(t == texts[0] for t in texts)
    prompt_media: list[Media] = []
    side_media: list[list[Media]] = [[] for _ in texts]
    for mtype, default_col in MEDIA_COLUMNS.items():
        col = columns.get(default_col, default_col)
        items = _media_list(raw, col)
        if not items:
            continue
        n_prompt = sum(m["content"].count(PLACEHOLDER[mtype]) for m in messages)
        p, sides = _split(items, col, n_prompt, generation, len(texts))
        prompt_media += [source.media(mtype, path, f"{col}[{i}]") for i, path in p]
        for k, side in enumerate(sides):
            side_media[k].extend(source.media(mtype, path, f"{col}[{i}]") for i, path in side)
    if generation and not any(side_media):
        raise DataFormatError(
            "chosen and rejected are identical and no media tell them apart", field=columns["rejected"]
        )
    clean = [{"role": m["role"], "content": _strip_placeholders(m["content"])} for m in messages]
    # In generation pairs the shared text says nothing about the preference: keep media only.
    responses = [
        Response(text="" if media else _strip_placeholders(text), media=media) for text, media in zip(texts, side_media)
    ]
    meta = {"messages": clean} if len(clean) > 1 else {}
    rid = record_id(raw, line, source)
    task = task or infer_task(prompt_media, responses)
    if len(responses) > 2:
        return Group(
            id=rid,
            task=task,
            prompt=prompt_from_messages(clean),
            responses=responses,
            prompt_media=prompt_media,
            ranking=list(range(len(responses))),
            meta=meta,
        )
    return Pair(
        id=rid,
        task=task,
        prompt=prompt_from_messages(clean),
        response1=responses[0],
        response2=responses[1],
        preference="response1",
        prompt_media=prompt_media,
        meta=meta,
    )


def _messages(raw: dict, columns: dict, tags: dict) -> list[dict]:
    key = columns["messages"]
    turns = raw.get(key)
    if turns is None:
        raise DataFormatError("missing field", field=key)
    if not isinstance(turns, list) or not turns:
        raise DataFormatError(f"expected a non-empty list of turns, got {type_name(turns)}", field=key)
    roles = {
        tags["user_tag"]: "user",
        tags["assistant_tag"]: "assistant",
        tags["system_tag"]: "system",
        "user": "user",
        "assistant": "assistant",
    }
    messages = []
    system = raw.get(columns.get("system", "system"))
    if system is not None:
        if not isinstance(system, str):
            raise DataFormatError(f"expected a string, got {type_name(system)}", field=columns.get("system"))
        if system.strip():
            messages.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        f = f"{key}[{i}]"
        if not isinstance(turn, dict):
            raise DataFormatError(
                f"expected an object with {tags['role_tag']!r} and {tags['content_tag']!r}, got {type_name(turn)}",
                field=f,
            )
        role = roles.get(turn.get(tags["role_tag"]))
        if role is None:
            raise DataFormatError(
                f"unknown role {turn.get(tags['role_tag'])!r} (expected "
                f"{tags['user_tag']}, {tags['assistant_tag']} or {tags['system_tag']})",
                field=f"{f}.{tags['role_tag']}",
            )
        content = turn.get(tags["content_tag"])
        if not isinstance(content, str):
            raise DataFormatError(f"expected a string, got {type_name(content)}", field=f"{f}.{tags['content_tag']}")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise DataFormatError(
            f"the last turn must be from {tags['user_tag']!r} (the responses answer it)",
            field=f"{key}[{len(turns) - 1}]",
        )
    return messages


def _rejected_texts(raw: dict, key: str, tags: dict) -> list[str]:
    """The rejected response, or (a ranking of K > 2) the list of rejected responses, best first."""
    v = raw.get(key)
    if not isinstance(v, list):
        return [_response_text(raw, key, tags)]
    if not v:
        raise DataFormatError("expected at least one rejected response", field=key)
    return [_text_of(x, f"{key}[{i}]", tags) for i, x in enumerate(v)]


def _response_text(raw: dict, key: str, tags: dict) -> str:
    return _text_of(raw.get(key), key, tags)


def _text_of(v, key: str, tags: dict) -> str:
    if v is None:
        raise DataFormatError("missing response", field=key)
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        content = v.get(tags["content_tag"])
        if not isinstance(content, str):
            raise DataFormatError(f"expected a string, got {type_name(content)}", field=f"{key}.{tags['content_tag']}")
        return content
    raise DataFormatError(f"expected an object with {tags['content_tag']!r}, got {type_name(v)}", field=key)


def _media_list(raw: dict, col: str) -> list:
    v = raw.get(col)
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list):
        raise DataFormatError(f"expected a list of paths, got {type_name(v)}", field=col)
    return v


def _split(items: list, col: str, n_prompt: int, generation: bool, n_sides: int = 2):
    """(prompt, [one list per response]) of `(index, path)`; see the module docstring."""
    if all(isinstance(x, list) for x in items):
        if len(items) != n_sides:
            what = "two (chosen, rejected)" if n_sides == 2 else f"{n_sides} (chosen, then each rejected)"
            raise DataFormatError(f"a list of lists must hold exactly {what}, got {len(items)}", field=col)
        # Indices name the place in the nested list, e.g. images[1][2] for the third rejected view.
        return [], [[(f"{k}][{j}", p) for j, p in enumerate(side)] for k, side in enumerate(items)]
    indexed = list(enumerate(items))
    if not generation:
        return indexed, [[] for _ in range(n_sides)]
    if len(items) % n_sides:
        parts = (
            "two halves (chosen, rejected)" if n_sides == 2 else f"{n_sides} equal parts (chosen, then each rejected)"
        )
        raise DataFormatError(
            f"chosen and rejected texts are equal, so the media must split in {parts}, but there are {len(items)}",
            field=col,
        )
    part = len(items) // n_sides
    k = n_prompt if n_prompt < part else 0
    return indexed[:k], [indexed[s * part + k : (s + 1) * part] for s in range(n_sides)]


def _strip_placeholders(text: str) -> str:
    if not any(ph in text for ph in PLACEHOLDER.values()):
        return text
    for ph in PLACEHOLDER.values():
        text = text.replace(ph, "")
    return re.sub(r"[ \t]+\n", "\n", text).strip()
