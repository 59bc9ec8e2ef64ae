"""Typed records of the native data contract (see DESIGN.md): pairs, pointwise items and groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnireward.data import kinds
from omnireward.errors import DataFormatError

TASKS = (
    "text_to_text",
    "text_image_to_text",
    "text_video_to_text",
    "text_audio_to_text",
    "text_to_image",
    "text_to_video",
    "text_to_audio",
    "text_to_3d",
    "text_image_to_image",
)
LABELS = ("response1", "response2", "tie")
# Modality of a task: what the reward model must be able to see.
TASK_MODALITY = {
    "text_to_text": "text",
    "text_image_to_text": "image",
    "text_video_to_text": "video",
    "text_audio_to_text": "audio",
    "text_to_image": "image",
    "text_to_video": "video",
    "text_to_audio": "audio",
    "text_to_3d": "3d",
    "text_image_to_image": "image",
}


@dataclass(frozen=True)
class Media:
    """One media item. `path` is as written in the source; `resolve_media` makes it absolute."""

    type: str
    path: str

    def to_dict(self) -> dict:
        return {"type": self.type, "path": self.path}


@dataclass
class Response:
    text: str = ""
    media: list[Media] = field(default_factory=list)

    def to_json(self) -> Any:
        if not self.media:
            return self.text
        out: dict[str, Any] = {}
        if self.text:
            out["text"] = self.text
        out["media"] = [m.to_dict() for m in self.media]
        return out


@dataclass
class Pair:
    """A preference pair: two responses to one prompt, optional label and criteria."""

    id: str
    task: str
    prompt: str
    response1: Response
    response2: Response
    preference: str | None = None
    criteria: str | None = None
    prompt_media: list[Media] = field(default_factory=list)
    margin: float | None = None
    critique: str | None = None
    # Judge trajectories for DPO: a preferred and a rejected written judgement of this pair.
    chosen_critique: str | None = None
    rejected_critique: str | None = None
    meta: dict = field(default_factory=dict)
    # Per-dimension labels ({dimension: response1|response2|tie}), given as `preference: {...}`.
    dimension_preferences: dict[str, str] = field(default_factory=dict)

    @property
    def responses(self) -> tuple[Response, Response]:
        return (self.response1, self.response2)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "task": self.task, "prompt": self.prompt}
        if self.prompt_media:
            d["prompt_media"] = [m.to_dict() for m in self.prompt_media]
        if self.criteria:
            d["criteria"] = self.criteria
        d["response1"] = self.response1.to_json()
        d["response2"] = self.response2.to_json()
        if self.dimension_preferences:
            d["preference"] = {
                **self.dimension_preferences,
                **({"overall": self.preference} if self.preference is not None else {}),
            }
        elif self.preference is not None:
            d["preference"] = self.preference
        if self.margin is not None:
            d["margin"] = self.margin
        if self.critique is not None:
            d["critique"] = self.critique
        if self.chosen_critique is not None:
            d["chosen_critique"] = self.chosen_critique
        if self.rejected_critique is not None:
            d["rejected_critique"] = self.rejected_critique
        if self.meta:
            d["meta"] = self.meta
        return d


@dataclass
class Item:
    """A pointwise item: one response to score."""

    id: str
    task: str
    prompt: str
    response: Response
    criteria: str | None = None
    prompt_media: list[Media] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "task": self.task, "prompt": self.prompt}
        if self.prompt_media:
            d["prompt_media"] = [m.to_dict() for m in self.prompt_media]
        if self.criteria:
            d["criteria"] = self.criteria
        d["response"] = self.response.to_json()
        if self.meta:
            d["meta"] = self.meta
        return d


@dataclass
class Group:
    """N >= 2 candidate responses to one prompt (best-of-N, rankings).

    `best` is the index of the gold best response; `ranking` the gold order of all N indices,
    best first. Either, both (then `best == ranking[0]`) or neither may be given.
    """

    id: str
    task: str
    prompt: str
    responses: list[Response]
    criteria: str | None = None
    prompt_media: list[Media] = field(default_factory=list)
    best: int | None = None
    ranking: list[int] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def gold_best(self) -> int | None:
        """The gold best index, from `best` or the head of `ranking`."""
        if self.best is not None:
            return self.best
        return self.ranking[0] if self.ranking else None

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id, "task": self.task, "prompt": self.prompt}
        if self.prompt_media:
            d["prompt_media"] = [m.to_dict() for m in self.prompt_media]
        if self.criteria:
            d["criteria"] = self.criteria
        d["responses"] = [r.to_json() for r in self.responses]
        if self.best is not None:
            d["best"] = self.best
        if self.ranking is not None:
            d["ranking"] = list(self.ranking)
        if self.meta:
            d["meta"] = self.meta
        return d


Record = Pair | Item | Group


def responses_of(rec: Record) -> list[Response]:
    """Every response a record holds, in the order rewards are reported."""
    if isinstance(rec, Pair):
        return [rec.response1, rec.response2]
    if isinstance(rec, Item):
        return [rec.response]
    return list(rec.responses)


def response_fields(rec: Record) -> list[str]:
    """The native field name of each response of `responses_of(rec)`."""
    if isinstance(rec, Pair):
        return ["response1", "response2"]
    if isinstance(rec, Item):
        return ["response"]
    return [f"responses[{i}]" for i in range(len(rec.responses))]


def infer_task(prompt_media: list[Media], responses: list[Response]) -> str:
    """Infer one of the nine tasks from where the media sit."""
    resp_types = {m.type for r in responses for m in r.media}
    prompt_types = {m.type for m in prompt_media}
    if resp_types:
        if "mesh" in resp_types:
            return "text_to_3d"
        if "video" in resp_types:
            return "text_to_video"
        if "audio" in resp_types:
            return "text_to_audio"
        if "image" in resp_types:
            # Several rendered views per response is Omni-RewardBench's 3D layout.
            if all(len(r.media) > 1 for r in responses):
                return "text_to_3d"
            return "text_image_to_image" if "image" in prompt_types else "text_to_image"
    for t, task in (("video", "text_video_to_text"), ("audio", "text_audio_to_text"), ("image", "text_image_to_text")):
        if t in prompt_types:
            return task
    return "text_to_text"


def _media_list(value: Any, field_name: str) -> list[Media]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise DataFormatError(f"expected a list of media objects, got {type(value).__name__}", field=field_name)
    out = []
    for i, m in enumerate(value):
        f = f"{field_name}[{i}]"
        if not isinstance(m, dict):
            raise DataFormatError(f"expected an object with 'type' and 'path', got {type(m).__name__}", field=f)
        mtype, path = m.get("type"), m.get("path")
        if kinds.get(mtype) is None:
            raise DataFormatError(
                f"unknown media type {mtype!r} (expected one of {', '.join(kinds.names())})", field=f + ".type"
            )
        if not isinstance(path, str) or not path:
            raise DataFormatError("missing media path", field=f + ".path")
        out.append(Media(mtype, path))
    return out


def parse_response(value: Any, field_name: str) -> Response:
    if value is None:
        raise DataFormatError("missing response", field=field_name)
    if isinstance(value, str):
        return Response(text=value)
    if isinstance(value, dict):
        text = value.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise DataFormatError(f"expected a string, got {type(text).__name__}", field=field_name + ".text")
        media = _media_list(value.get("media"), field_name + ".media")
        if not text and not media:
            raise DataFormatError("response has neither text nor media", field=field_name)
        return Response(text=text, media=media)
    raise DataFormatError(f"expected a string or an object, got {type(value).__name__}", field=field_name)


def _opt_str(d: dict, key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise DataFormatError(f"expected a string, got {type(v).__name__}", field=key)
    return v


def record_from_dict(d: Any, default_id: str = "") -> Record:
    """Parse one native record; raises DataFormatError naming the field."""
    if not isinstance(d, dict):
        raise DataFormatError(f"expected a JSON object, got {type(d).__name__}")
    rid = d.get("id", default_id)
    rid = str(rid) if rid is not None else default_id
    prompt = d.get("prompt", "")
    if not isinstance(prompt, str):
        raise DataFormatError(f"expected a string, got {type(prompt).__name__}", field="prompt")
    prompt_media = _media_list(d.get("prompt_media"), "prompt_media")
    criteria = _opt_str(d, "criteria")
    task = d.get("task")
    if task is not None and task not in TASKS:
        raise DataFormatError(f"unknown task {task!r} (expected one of {', '.join(TASKS)})", field="task")
    meta = d.get("meta") or {}
    if "responses" in d:
        return _group(d, rid, task, prompt, prompt_media, criteria, meta)
    if "response" in d and "response1" not in d:
        resp = parse_response(d["response"], "response")
        return Item(
            id=rid,
            task=task or infer_task(prompt_media, [resp]),
            prompt=prompt,
            response=resp,
            criteria=criteria,
            prompt_media=prompt_media,
            meta=meta,
        )
    r1 = parse_response(d.get("response1"), "response1")
    r2 = parse_response(d.get("response2"), "response2")
    pref, dims = _preference(d.get("preference"))
    margin = d.get("margin")
    if margin is not None and not isinstance(margin, (int, float)):
        raise DataFormatError(f"expected a number, got {type(margin).__name__}", field="margin")
    critique = _opt_str(d, "critique")
    chosen, rejected = _opt_str(d, "chosen_critique"), _opt_str(d, "rejected_critique")
    if (chosen is None) != (rejected is None):
        raise DataFormatError(
            "chosen_critique and rejected_critique come together (DPO on judge trajectories)",
            field="rejected_critique" if rejected is None else "chosen_critique",
        )
    return Pair(
        id=rid,
        task=task or infer_task(prompt_media, [r1, r2]),
        prompt=prompt,
        response1=r1,
        response2=r2,
        preference=pref,
        criteria=criteria,
        prompt_media=prompt_media,
        margin=float(margin) if margin is not None else None,
        critique=critique,
        chosen_critique=chosen,
        rejected_critique=rejected,
        meta=meta,
        dimension_preferences=dims,
    )


def _preference(value: Any) -> tuple[str | None, dict[str, str]]:
    """(overall label, per-dimension labels) of a pair's `preference`: a label, or an object
    {dimension: label} whose optional `overall` key is the overall label."""
    if value is None:
        return None, {}
    if isinstance(value, dict):
        if not value:
            raise DataFormatError("an empty preference object labels nothing", field="preference")
        for k, v in value.items():
            if v not in LABELS:
                raise DataFormatError(
                    f"unknown preference label {v!r} (expected response1, response2 or tie)", field=f"preference.{k}"
                )
        dims = {str(k): v for k, v in value.items() if k != "overall"}
        return value.get("overall"), dims
    if value not in LABELS:
        raise DataFormatError(
            f"unknown preference label {value!r} (expected response1, response2 or tie, "
            "or an object {dimension: label})",
            field="preference",
        )
    return value, {}


def _group(d: dict, rid: str, task, prompt: str, prompt_media: list[Media], criteria, meta) -> Group:
    """A `responses: [...]` record; `best`/`ranking` are checked against the number of responses."""
    for other in ("response", "response1", "response2"):
        if other in d:
            raise DataFormatError(f"a record has either 'responses' (a group) or {other!r}, not both", field=other)
    if "preference" in d:
        raise DataFormatError(
            "a group names its gold response with 'best' or 'ranking', not 'preference'", field="preference"
        )
    raw = d["responses"]
    if not isinstance(raw, list):
        raise DataFormatError(f"expected a list of responses, got {type(raw).__name__}", field="responses")
    if len(raw) < 2:
        raise DataFormatError(f"a group needs at least 2 responses, got {len(raw)}", field="responses")
    responses = [parse_response(r, f"responses[{i}]") for i, r in enumerate(raw)]
    n = len(responses)
    best = d.get("best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < n):
        raise DataFormatError(f"expected an index of responses (0 to {n - 1}), got {best!r}", field="best")
    ranking = d.get("ranking")
    if ranking is not None:
        if (
            not isinstance(ranking, list)
            or any(isinstance(i, bool) or not isinstance(i, int) for i in ranking)
            or sorted(ranking) != list(range(n))
        ):
            raise DataFormatError(
                f"expected every index 0 to {n - 1} once, best first, got {ranking!r}", field="ranking"
            )
        if best is not None and ranking[0] != best:
            raise DataFormatError(f"best is {best} but ranking starts with {ranking[0]}", field="best")
    return Group(
        id=rid,
        task=task or infer_task(prompt_media, responses),
        prompt=prompt,
        responses=responses,
        criteria=criteria,
        prompt_media=prompt_media,
        best=best,
        ranking=ranking,
        meta=meta,
    )


def length_hint(rec: Record) -> int:
    """Rough sequence length, for sorting batches by length."""
    responses = responses_of(rec)
    text = len(rec.prompt) + len(rec.criteria or "") + sum(len(r.text) for r in responses)
    return text // 4 + 16 * (len(rec.prompt_media) + sum(len(r.media) for r in responses))
