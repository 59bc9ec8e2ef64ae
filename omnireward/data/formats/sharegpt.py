"""LLaMA-Factory / Omni-RewardData sharegpt "ranking" files, and their `dataset_info.json` registry.

A record has `conversations` (turns `{from: human|gpt|system, value}`), `chosen` and
`rejected` (`{from, value}`), optional `system`, and optional `images` / `videos` / `audios`
lists. `chosen` becomes `response1` with preference `response1` (prep can shuffle sides).

Where the media go: `<image>`-style placeholders only mark positions in the prompt and are
removed from the text. When chosen and rejected texts are equal (generation tasks) the media
carry the preference: the list splits in halves, first half chosen, second half rejected;
if the prompt has N placeholders of that type, the first N items of each half are the prompt's
(taken from the first half). A list of two lists is (chosen media, rejected media). Otherwise
(text responses) every media item belongs to the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from omnireward.data.formats.common import (Result, Source, convert_file, prompt_from_messages,
                                            record_id, type_name)
from omnireward.data.io import read_json_document
from omnireward.data.records import Media, Pair, Response, infer_task
from omnireward.errors import DataFormatError

MEDIA_COLUMNS = {"image": "images", "video": "videos", "audio": "audios"}
DEFAULT_COLUMNS = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
                   "system": "system", **{c: c for c in MEDIA_COLUMNS.values()}}
DEFAULT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                "assistant_tag": "gpt", "system_tag": "system"}
PLACEHOLDER = {t: f"<{t}>" for t in MEDIA_COLUMNS}
REGISTRY_NAME = "dataset_info.json"
# Omni-RewardData subset names carry their task (`omni_t2i`, `omni_ti2t_rlaifv`, ...).
_SUBSET_TASK = {"t2t": "text_to_text", "ti2t": "text_image_to_text", "tv2t": "text_video_to_text",
                "ta2t": "text_audio_to_text", "t2i": "text_to_image", "t2v": "text_to_video",
                "t2a": "text_to_audio", "t23d": "text_to_3d", "ti2i": "text_image_to_image"}
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
    return (isinstance(doc, dict) and bool(doc)
            and all(isinstance(v, dict) and "file_name" in v for v in doc.values()))


def read(path: Path, *, media_root: Path | None = None, allow_outside: bool = False,
         check_media: bool = False, columns: dict | None = None, tags: dict | None = None,
         task: str | None = None) -> Iterator[Result]:
    """Read one sharegpt ranking file, or every ranking dataset a registry lists that exists."""
    if is_registry(path):
        yield from read_registry(path / REGISTRY_NAME if path.is_dir() else path, media_root=media_root,
                                 allow_outside=allow_outside, check_media=check_media)
        return
    source = Source(path, Path(media_root) if media_root else path.parent, allow_outside,
                    check_media)
    yield from convert_file(path, source, partial(convert, columns={**DEFAULT_COLUMNS, **(columns or {})},
                                                  tags={**DEFAULT_TAGS, **(tags or {})}, task=task))


def read_registry(path: Path, *, media_root: Path | None = None, allow_outside: bool = False,
                  check_media: bool = False) -> Iterator[Result]:
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
        raise DataFormatError("none of the sharegpt ranking datasets this registry lists were found "
                              "beside it", file=path)
    for name, entry, f in found:
        m = _SUBSET_RE.match(name)
        yield from read(f, media_root=media_root, allow_outside=allow_outside, check_media=check_media,
                        columns=entry.get("columns"), tags=entry.get("tags"),
                        task=_SUBSET_TASK[m.group(1)] if m else None)


def convert(raw: dict, line: int | None, source: Source, *, columns: dict, tags: dict,
            task: str | None) -> Pair:
    """One ranking record as a native Pair (chosen → response1)."""
    messages = _messages(raw, columns, tags)
    chosen = _response_text(raw, columns["chosen"], tags)
    rejected = _response_text(raw, columns["rejected"], tags)
    generation = chosen == rejected
    prompt_media: list[Media] = []
    side_media: tuple[list[Media], list[Media]] = ([], [])
    for mtype, default_col in MEDIA_COLUMNS.items():
        col = columns.get(default_col, default_col)
        items = _media_list(raw, col)
        if not items:
            continue
        n_prompt = sum(m["content"].count(PLACEHOLDER[mtype]) for m in messages)
        p, c, r = _split(items, col, n_prompt, generation)
        prompt_media += [source.media(mtype, path, f"{col}[{i}]") for i, path in p]
        side_media[0].extend(source.media(mtype, path, f"{col}[{i}]") for i, path in c)
        side_media[1].extend(source.media(mtype, path, f"{col}[{i}]") for i, path in r)
    if generation and not (side_media[0] or side_media[1]):
        raise DataFormatError("chosen and rejected are identical and no media tell them apart",
                              field=columns["rejected"])
    clean = [{"role": m["role"], "content": _strip_placeholders(m["content"])} for m in messages]
    # In generation pairs the shared text says nothing about the preference: keep media only.
    r1 = Response(text="" if side_media[0] else _strip_placeholders(chosen), media=side_media[0])
    r2 = Response(text="" if side_media[1] else _strip_placeholders(rejected), media=side_media[1])
    meta = {"messages": clean} if len(clean) > 1 else {}
    return Pair(id=record_id(raw, line, source), task=task or infer_task(prompt_media, [r1, r2]),
                prompt=prompt_from_messages(clean), response1=r1, response2=r2, preference="response1",
                prompt_media=prompt_media, meta=meta)


def _messages(raw: dict, columns: dict, tags: dict) -> list[dict]:
    key = columns["messages"]
    turns = raw.get(key)
    if turns is None:
        raise DataFormatError("missing field", field=key)
    if not isinstance(turns, list) or not turns:
        raise DataFormatError(f"expected a non-empty list of turns, got {type_name(turns)}", field=key)
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
             "user": "user", "assistant": "assistant"}
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
            raise DataFormatError(f"expected an object with {tags['role_tag']!r} and {tags['content_tag']!r}, "
                                  f"got {type_name(turn)}", field=f)
        role = roles.get(turn.get(tags["role_tag"]))
        if role is None:
            raise DataFormatError(f"unknown role {turn.get(tags['role_tag'])!r} (expected "
                                  f"{tags['user_tag']}, {tags['assistant_tag']} or {tags['system_tag']})",
                                  field=f"{f}.{tags['role_tag']}")
        content = turn.get(tags["content_tag"])
        if not isinstance(content, str):
            raise DataFormatError(f"expected a string, got {type_name(content)}", field=f"{f}.{tags['content_tag']}")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise DataFormatError(f"the last turn must be from {tags['user_tag']!r} (the responses answer it)",
                              field=f"{key}[{len(turns) - 1}]")
    return messages


def _response_text(raw: dict, key: str, tags: dict) -> str:
    v = raw.get(key)
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


def _split(items: list, col: str, n_prompt: int, generation: bool):
    """(prompt, chosen, rejected) lists of `(index, path)`; see the module docstring."""
    if all(isinstance(x, list) for x in items):
        if len(items) != 2:
            raise DataFormatError(f"a list of lists must hold exactly two (chosen, rejected), got {len(items)}",
                                  field=col)
        # Indices name the place in the nested list, e.g. images[1][2] for the third rejected view.
        return ([], [(f"0][{j}", p) for j, p in enumerate(items[0])],
                [(f"1][{j}", p) for j, p in enumerate(items[1])])
    indexed = list(enumerate(items))
    if not generation:
        return indexed, [], []
    if len(items) % 2:
        raise DataFormatError(f"chosen and rejected texts are equal, so the media must split in two halves "
                              f"(chosen, rejected), but there are {len(items)}", field=col)
    half = len(items) // 2
    k = n_prompt if n_prompt < half else 0
    return indexed[:k], indexed[k:half], indexed[half + k:]


def _strip_placeholders(text: str) -> str:
    if not any(ph in text for ph in PLACEHOLDER.values()):
        return text
    for ph in PLACEHOLDER.values():
        text = text.replace(ph, "")
    return re.sub(r"[ \t]+\n", "\n", text).strip()
