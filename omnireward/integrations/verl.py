"""A verl custom reward function: `custom_reward_function.path` = this file, `.name=compute_score`.

    custom_reward_function.path=$(python -c "import omnireward.integrations.verl as m; print(m.__file__)")
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.model=runs/demo-text     # or a server URL, or $OMNIREWARD_MODEL

verl calls `compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`
with its `reward_kwargs` merged in, from a thread pool: concurrent calls share forward passes of a
model loaded once per process (or go to a running `omnireward serve`). verl does not pass the
prompt; it comes from `extra_info` (the key named by `prompt_key`, else "prompt", then "question";
a list of chat messages is read as a conversation), criteria from `extra_info["criteria"]` or the
`criteria` keyword, media paths from `extra_info["images"|"image"|"videos"|"video"|"audios"|"audio"]`.
Returns the reward as a float (the one `omnireward score` gives); `normalize=True` returns it
normalised by the folder's reward statistics.
"""

from __future__ import annotations

from typing import Any

from omnireward.data.records import Item, Response, infer_task
from omnireward.errors import RequestError
from omnireward.integrations.backend import scorer_for
from omnireward.integrations.inputs import MEDIA_COLUMNS, cell_media, text_messages
from omnireward.serving.chat import fields_from_messages, prompt_fields, strip_end_markers

PROMPT_KEYS = ("prompt", "question")


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, *,
                  model: str | None = None, prompt_key: str | None = None, criteria: str | None = None,
                  normalize: bool = False, **kwargs: Any) -> float:
    """The omnireward reward of `solution_str` (the policy's response); `ground_truth` is not used."""
    extra = dict(extra_info or {})
    scorer = scorer_for(model)
    prompt, system = _prompt(extra, prompt_key, scorer.default_system)
    crit = criteria if criteria is not None else extra.get("criteria") or system
    with scorer.lease() as lease:
        media = [m for key in MEDIA_COLUMNS if extra.get(key) is not None
                 for m in cell_media(extra[key], key, lease, f"extra_info.{key}")]
        response = Response(text=strip_end_markers(solution_str or ""))
        item = Item(id=str(extra.get("index", 0)), task=infer_task(media, [response]), prompt=prompt,
                    response=response, criteria=crit, prompt_media=media)
        reward = scorer.score([item], where=["solution_str"])[0]["reward"]
    return scorer.scale.normalized(reward) if normalize else reward


def _prompt(extra: dict, key: str | None, default_system: str | None) -> tuple[str, str | None]:
    keys = (key,) if key else PROMPT_KEYS
    for k in keys:
        value = extra.get(k)
        if value is None:
            continue
        if isinstance(value, str):
            fields = prompt_fields(value, default_system=default_system)
            return fields.prompt, fields.criteria
        if isinstance(value, (list, tuple)):
            fields = fields_from_messages(text_messages(list(value), f"extra_info.{k}"),
                                          default_system=default_system, has_response=False)
            return fields.prompt, fields.criteria
        raise RequestError(f"expected a string or chat messages, got {type(value).__name__}", field=f"extra_info.{k}")
    if key:
        raise RequestError("missing (named by prompt_key)", field=f"extra_info.{key}")
    return "", None
