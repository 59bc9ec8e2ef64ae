"""Reading RL frameworks' dataset cells: chat messages with content parts, and media cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnireward.data.records import Media
from omnireward.errors import RequestError
from omnireward.serving.media import Lease

# Dataset columns (TRL) and extra_info keys (verl) whose values are media of the prompt.
MEDIA_COLUMNS = ("image", "images", "video", "videos", "audio", "audios")


def text_messages(messages: Any, field: str) -> list[dict]:
    """Messages with their text parts joined (TRL's multimodal prompts carry `{"type": "image"}` parts
    whose pixels are in the `image(s)` column)."""
    if not isinstance(messages, list):
        raise RequestError("expected a string or a list of messages", field=field)
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise RequestError("expected a message with role and content", field=f"{field}[{j}]")
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        out.append({"role": m["role"], "content": content})
    return out


def cell_media(value: Any, column: str, lease: Lease, field: str) -> list[Media]:
    """Media items of one dataset cell: a PIL image, a path or data: URI, decoded audio, or a list of them."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [m for j, v in enumerate(value) for m in cell_media(v, column, lease, f"{field}[{j}]")]
    kind = column.rstrip("s")
    if isinstance(value, str):
        return [lease.media(kind, value, field)]
    if hasattr(value, "save") and hasattr(value, "convert"):  # a PIL image
        return [lease.image(value, field)]
    if isinstance(value, dict):
        if value.get("array") is not None and value.get("sampling_rate"):
            return [lease.waveform(value["array"], value["sampling_rate"], field)]
        if value.get("bytes"):
            suffix = Path(value.get("path") or "").suffix or {"image": ".png", "audio": ".wav", "video": ".mp4"}[kind]
            return [lease.raw(value["bytes"], kind, suffix, field)]
        if value.get("path"):
            return [lease.media(kind, value["path"], field)]
    raise RequestError(f"cannot read a {type(value).__name__} as {kind}", field=field)
