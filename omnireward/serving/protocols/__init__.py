"""Request shapes the server speaks: each module turns a JSON body into records and results into
the JSON its clients expect. No HTTP here; `omnireward.serving.app` wires them to routes.

    native    POST /score, /score_group    omnireward's own records
    openrlhf  POST /get_reward             OpenRLHF's remote reward model client
    vllm      POST /classify, /pooling     vLLM's pooling API, as verl's reward loop posts it
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omnireward.data.records import Record
from omnireward.errors import RequestTooLarge
from omnireward.serving.scale import RewardScale


@dataclass
class Context:
    """What a protocol needs to know about the server it runs in."""

    scale: RewardScale = field(default_factory=RewardScale)
    default_system: str | None = None
    system_prompt_as_criteria: str = "auto"  # see omnireward.serving.chat
    max_records: int = 1024
    model_name: str = "omnireward"
    reward_stats: dict | None = None


@dataclass
class Parsed:
    """Records to score, where each came from (for error messages), and what the reply needs."""

    records: list[Record]
    where: list[str]
    extra: dict = field(default_factory=dict)


def check_count(n: int, ctx: Context, field_name: str) -> None:
    if n > ctx.max_records:
        raise RequestTooLarge(
            f"{n} records is over the limit of {ctx.max_records} per request "
            "(--max-records-per-request); send them in several requests",
            field=field_name,
        )


def join(where: str, name: str) -> str:
    """`records[2]` + `prompt` -> `records[2].prompt`."""
    return ".".join(x for x in (where, name) if x)
