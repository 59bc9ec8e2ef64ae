"""Turn records into conversations: criteria in the system turn, prompt (+media), response (+media)."""

from __future__ import annotations

from omnireward.backbones.base import Conversation, conversation
from omnireward.data.records import Pair, Record, Response, responses_of


def reward_conversation(rec: Record, response: Response) -> Conversation:
    """The conversation a BT head scores: system = criteria (as Omni-Reward does), user = prompt
    with its media, assistant = the response with its media."""
    return conversation(rec.criteria, [*rec.prompt_media, rec.prompt], [*response.media, response.text])


def length_hint(rec: Record) -> int:
    """Rough sequence length, for sorting batches by length."""
    responses = responses_of(rec)
    text = len(rec.prompt) + len(rec.criteria or "") + sum(len(r.text) for r in responses)
    return text // 4 + 16 * (len(rec.prompt_media) + sum(len(r.media) for r in responses))
