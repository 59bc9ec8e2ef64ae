"""Turn records into conversations: criteria in the system turn, prompt (+media), response (+media)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from omnireward.backbones.base import Conversation
from omnireward.backbones.modular import conversation
from omnireward.data.paths import resolve_media_path
from omnireward.data.records import Item, Media, Pair, Record, Response


def reward_conversation(rec: Record, response: Response) -> Conversation:
    """The conversation a BT head scores: system = criteria (as Omni-Reward does), user = prompt
    with its media, assistant = the response with its media."""
    return conversation(rec.criteria, [*rec.prompt_media, rec.prompt], [*response.media, response.text])


def resolve_record(rec: Record, root: str | Path, *, allow_outside: bool = False) -> Record:
    """Copy of `rec` whose media paths are absolute (checked against the media root)."""

    def res(media: list[Media]) -> list[Media]:
        return [Media(m.type, str(resolve_media_path(m.path, root, allow_outside=allow_outside))) for m in media]

    if isinstance(rec, Pair):
        return replace(rec, prompt_media=res(rec.prompt_media),
                       response1=Response(rec.response1.text, res(rec.response1.media)),
                       response2=Response(rec.response2.text, res(rec.response2.media)))
    assert isinstance(rec, Item)
    return replace(rec, prompt_media=res(rec.prompt_media),
                   response=Response(rec.response.text, res(rec.response.media)))


def length_hint(rec: Record) -> int:
    """Rough sequence length, for sorting batches by length."""
    responses = rec.responses if isinstance(rec, Pair) else (rec.response,)
    text = len(rec.prompt) + len(rec.criteria or "") + sum(len(r.text) for r in responses)
    return text // 4 + 16 * (len(rec.prompt_media) + sum(len(r.media) for r in responses))
