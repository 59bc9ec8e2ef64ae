"""Turn records into conversations: criteria in the system turn, prompt (+media), response (+media)."""

from __future__ import annotations

from omnireward.backbones.base import Conversation, conversation
from omnireward.data.records import Pair, Record, Response, length_hint, responses_of  # noqa: F401 (re-export)


def reward_conversation(rec: Record, response: Response) -> Conversation:
    """The conversation a BT head scores: system = criteria (as Omni-Reward does), user = prompt
    with its media, assistant = the response with its media."""
    return conversation(rec.criteria, [*rec.prompt_media, rec.prompt], [*response.media, response.text])
