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
normalised by the folder's reward statistics. `model` may name an ensemble: a list of folders
(`+custom_reward_function.reward_kwargs.model=[runs/a,runs/b]`), comma-separated folders, or a
folder of model folders; `ensemble=mean|min|mean_minus_std` and `ensemble_lambda` choose the rule
(omnireward.scoring.ensemble), and the reward is the members' combined normalised reward. verl's batched convention (`data_sources=`,
`solution_strs=`, `ground_truths=`, `extra_infos=`, as its batch reward manager passes them) returns
one float per response, scored in one call.

verl's own preprocessing (hh-rlhf, gsm8k, hellaswag) stores only `{split, index}` in `extra_info`:
without a prompt the reward model judges the response alone. That warns once per process, naming the
key to add; `missing_prompt="error"` refuses instead (a RequestError naming `extra_info.prompt`).
A templated prompt string loses its markers, and a policy's default system prompt is not criteria
(`system_prompt_as_criteria="auto"`, or "always" / "never"; see omnireward.serving.chat).
"""

from __future__ import annotations

import warnings
from typing import Any

from omnireward.data.records import Item, Response, infer_task
from omnireward.errors import RequestError
from omnireward.integrations.backend import scorer_for
from omnireward.integrations.inputs import MEDIA_COLUMNS, cell_media
from omnireward.serving.chat import check_mode, conversation_fields, response_text

PROMPT_KEYS = ("prompt", "question")


def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: Any = None,
    extra_info: dict | None = None,
    *,
    model: str | list | None = None,
    prompt_key: str | None = None,
    criteria: str | None = None,
    normalize: bool = False,
    missing_prompt: str = "warn",
    data_sources: list | None = None,
    solution_strs: list | None = None,
    ground_truths: list | None = None,
    extra_infos: list | None = None,
    system_prompt_as_criteria: str = "auto",
    ensemble: str | None = None,
    ensemble_lambda: float | None = None,
    **kwargs: Any,
) -> float | list[float]:
    """The omnireward reward of `solution_str` (the policy's response); `ground_truth` is not used.
    With `solution_strs=` (verl's batched convention) a list of rewards, one per response."""
    if missing_prompt not in ("warn", "error"):
        raise RequestError(f"must be 'warn' or 'error', got {missing_prompt!r}", field="missing_prompt")
    mode = check_mode(system_prompt_as_criteria)
    scorer = scorer_for(model, ensemble=ensemble, ensemble_lambda=ensemble_lambda)
    if solution_strs is not None:
        infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
        if len(infos) != len(solution_strs):
            raise RequestError(f"{len(infos)} extra_infos for {len(solution_strs)} solution_strs", field="extra_infos")
        if not solution_strs:
            return []
        with scorer.lease() as lease:
            items = [
                _item(scorer, lease, s, x, prompt_key, criteria, missing_prompt, k, mode)
                for k, (s, x) in enumerate(zip(solution_strs, infos))
            ]
            rewards = [
                r["reward"] for r in scorer.score(items, where=[f"solution_strs[{k}]" for k in range(len(items))])
            ]
        return [scorer.scale.normalized(r) for r in rewards] if normalize else rewards
    with scorer.lease() as lease:
        item = _item(scorer, lease, solution_str, extra_info, prompt_key, criteria, missing_prompt, None, mode)
        reward = scorer.score([item], where=["solution_str"])[0]["reward"]
    return scorer.scale.normalized(reward) if normalize else reward


_warned_no_prompt = False


def _item(
    scorer,
    lease,
    solution: str | None,
    extra_info: dict | None,
    prompt_key: str | None,
    criteria: str | None,
    missing_prompt: str,
    k: int | None,
    mode: str = "auto",
) -> Item:
    global _warned_no_prompt
    extra = dict(extra_info or {})
    where = "extra_info" if k is None else f"extra_infos[{k}]"
    prompt, system = _prompt(extra, prompt_key, scorer.default_system, mode, where)
    if not prompt and not any(extra.get(x) for x in (prompt_key, *PROMPT_KEYS) if x):
        msg = (
            f"no prompt in {where} (keys: {', '.join(sorted(extra)) or 'none'}): the response is judged "
            f"without its prompt; add the prompt as {where}['prompt'] in the dataset's preprocessing"
        )
        if missing_prompt == "error":
            raise RequestError(msg, field=f"{where}.prompt")
        if not _warned_no_prompt:
            _warned_no_prompt = True
            warnings.warn(msg, stacklevel=3)
    crit = criteria if criteria is not None else extra.get("criteria") or system
    media = [
        m
        for key in MEDIA_COLUMNS
        if extra.get(key) is not None
        for m in cell_media(extra[key], key, lease, f"{where}.{key}")
    ]
    response = Response(text=response_text(solution or ""))
    return Item(
        id=str(extra.get("index", 0 if k is None else k)),
        task=infer_task(media, [response]),
        prompt=prompt,
        response=response,
        criteria=crit,
        prompt_media=media,
    )


def _prompt(
    extra: dict, key: str | None, default_system: str | None, mode: str = "auto", where: str = "extra_info"
) -> tuple[str, str | None]:
    keys = (key,) if key else PROMPT_KEYS
    for k in keys:
        value = extra.get(k)
        if value is None:
            continue
        if not isinstance(value, (str, list, tuple)):
            raise RequestError(f"expected a string or chat messages, got {type(value).__name__}", field=f"{where}.{k}")
        fields = conversation_fields(
            value if isinstance(value, str) else list(value),
            "",
            default_system=default_system,
            system_prompt_as_criteria=mode,
            field=f"{where}.{k}",
        )
        return fields.prompt, fields.criteria
    if key:
        raise RequestError("missing (named by prompt_key)", field=f"{where}.{key}")
    return "", None


from omnireward.integrations.verl_judge import compute_judge_score, judge_messages, judge_reward  # noqa: E402,F401
