"""omnireward's own routes.

    POST /score        [record, ...] or {"records": [...]}      native records (pairs or items)
                       -> {"results": [one `omnireward score` line per record]}
    POST /score_group  {"prompt", "responses": [...], "criteria"?, "prompt_media"?, "task"?}
                       -> {"rewards", "normalized", "unit", "reward_stats", "best"}
                          (+ "rewards_std" with head=gaussian, "dimensions" with head=multi,
                          "ensemble_std" and "ensemble_members" when serving an ensemble)

Media items take a path under the media root or a base64 `data:` URI in `path`.
"""

from __future__ import annotations

from typing import Any

from omnireward.data.records import Item, Pair, Record, record_from_dict
from omnireward.errors import OmniRewardError, RequestError
from omnireward.serving.media import Lease
from omnireward.serving.protocols import Context, Parsed, check_count, join


def response_slots(record: Record) -> list[tuple[str, Any]]:
    """(native field name, Response) for every response of a record."""
    if isinstance(record, Item):
        return [("response", record.response)]
    if isinstance(record, Pair):
        return [("response1", record.response1), ("response2", record.response2)]
    return [(f"responses[{i}]", r) for i, r in enumerate(getattr(record, "responses", ()))]


def resolve_media(record: Record, lease: Lease, where: str, rename: dict[str, str] | None = None) -> Record:
    """Every media path of a record made absolute (or spooled from a data: URI), errors naming the field."""
    rename = rename or {}
    record.prompt_media = [
        lease.media(m.type, m.path, join(where, f"prompt_media[{i}].path")) for i, m in enumerate(record.prompt_media)
    ]
    for name, resp in response_slots(record):
        shown = rename.get(name, name)
        resp.media = [
            lease.media(m.type, m.path, join(where, f"{shown}.media[{i}].path")) for i, m in enumerate(resp.media)
        ]
    return record


def native_record(raw: Any, lease: Lease, where: str, default_id: str, rename: dict[str, str] | None = None) -> Record:
    try:
        record = record_from_dict(raw, default_id=default_id)
    except OmniRewardError as e:
        field = e.field or ""
        for old, new in (rename or {}).items():
            if field == old or field.startswith(old + "."):
                field = new + field[len(old) :]
        raise RequestError(e.reason, field=join(where, field) or "body") from None
    return resolve_media(record, lease, where, rename)


def parse_score(body: Any, lease: Lease, ctx: Context) -> Parsed:
    raw = body.get("records") if isinstance(body, dict) else body
    if not isinstance(raw, list):
        raise RequestError('expected a list of records (or {"records": [...]})', field="records")
    check_count(len(raw), ctx, "records")
    where = [f"records[{i}]" for i in range(len(raw))]
    return Parsed([native_record(r, lease, w, str(i)) for i, (r, w) in enumerate(zip(raw, where))], where)


def respond_score(lines: list[dict], parsed: Parsed, ctx: Context) -> dict:
    return {"results": lines}


def parse_score_group(body: Any, lease: Lease, ctx: Context) -> Parsed:
    if not isinstance(body, dict):
        raise RequestError("expected an object with prompt and responses", field="body")
    responses = body.get("responses")
    if not isinstance(responses, list):
        raise RequestError("expected a list of responses (strings or {text, media})", field="responses")
    check_count(len(responses), ctx, "responses")
    if not isinstance(body.get("prompt"), str):
        raise RequestError("expected a string", field="prompt")
    shared = {k: body[k] for k in ("prompt", "criteria", "prompt_media", "task") if k in body}
    where = [f"responses[{i}]" for i in range(len(responses))]
    records = [
        native_record({**shared, "id": str(i), "response": resp}, lease, "", str(i), rename={"response": where[i]})
        for i, resp in enumerate(responses)
    ]
    return Parsed(records, where)


def respond_score_group(lines: list[dict], parsed: Parsed, ctx: Context) -> dict:
    rewards = [line["reward"] for line in lines]
    out = {
        "rewards": rewards,
        "normalized": [ctx.scale.normalized(r) for r in rewards] if ctx.scale.known else None,
        "unit": [ctx.scale.unit(r) for r in rewards],
        "reward_stats": ctx.reward_stats,
        "best": max(range(len(rewards)), key=rewards.__getitem__) if rewards else None,
    }
    # What head=gaussian and head=multi predict beside the reward, as `omnireward score` writes it.
    for key, name in (("reward_std", "rewards_std"), ("dimensions", "dimensions")):
        if lines and key in lines[0]:
            out[name] = [line[key] for line in lines]
    if lines and "ensemble" in lines[0]:  # an ensemble server: the members' spread per response
        out["ensemble_std"] = [line["ensemble"]["std"] for line in lines]
        out["ensemble_members"] = [line["ensemble"]["members"] for line in lines]
    return out
