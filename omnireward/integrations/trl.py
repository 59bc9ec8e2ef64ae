"""A reward function for TRL's `GRPOTrainer(reward_funcs=[...])`.

    from omnireward.integrations.trl import RewardFunction
    trainer = GRPOTrainer(model=..., reward_funcs=[RewardFunction("runs/demo-text")], ...)

TRL calls it as `reward_func(prompts=..., completions=..., completion_ids=..., **columns)`, where
the columns are the dataset's other columns (one value per completion) plus `trainer_state`. Both
of TRL's dataset formats work: standard (`prompts` and `completions` are strings) and
conversational (lists of `{"role", "content"}` messages; a system turn becomes the criteria, as
in omnireward's own conversations, unless criteria are given). A standard-format prompt that is
already chat-templated text loses its markers (omnireward.serving.chat reads it), and a policy
family's default system prompt is not criteria (`system_prompt_as_criteria="auto"`; "always" or
"never" instead). Media come from the `image`,
`images`, `audio` and `video` columns (PIL images, file paths, `data:` URIs, or decoded audio
`{"array", "sampling_rate"}`) and go with the prompt. Criteria come from a column
(`criteria_column`, default "criteria") or a fixed string (`criteria=`).

The rewards are the ones `omnireward score` gives the native record `{prompt, response}`;
`normalize=True` returns (reward - mean) / std by the folder's reward statistics instead, which
keeps the reward on the scale GRPO's advantages assume when several reward functions are summed.
An ensemble is several folders (`RewardFunction(["runs/a", "runs/b"], ensemble="mean_minus_std")`,
or a folder of model folders): the reward is the members' combined normalised reward
(omnireward.scoring.ensemble), with λ = `ensemble_lambda`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnireward.data.records import Item, Response, infer_task
from omnireward.errors import RequestError
from omnireward.integrations.backend import scorer_for
from omnireward.integrations.inputs import MEDIA_COLUMNS, cell_media
from omnireward.serving.chat import check_mode, conversation_fields
from omnireward.serving.media import Lease


class RewardFunction:
    """`(prompts, completions, **kwargs) -> list[float]` scored by an omnireward model folder or server."""

    def __init__(
        self,
        model: str | Path | list | None = None,
        *,
        criteria: str | None = None,
        criteria_column: str = "criteria",
        normalize: bool = False,
        quant: str = "none",
        device: str = "auto",
        batch_size: int = 32,
        api_key: str | None = None,
        timeout: float = 120.0,
        system_prompt_as_criteria: str = "auto",
        ensemble: str | None = None,
        ensemble_lambda: float | None = None,
    ):
        if model is None or isinstance(model, (str, Path)):
            self.model = str(model) if model is not None else None
        else:  # several model folders: an ensemble
            self.model = tuple(str(m) for m in model)
        self.system_prompt_as_criteria = check_mode(system_prompt_as_criteria)
        self.criteria = criteria
        self.criteria_column = criteria_column
        self.normalize = normalize
        self._options = dict(
            quant=quant,
            device=device,
            batch_size=batch_size,
            api_key=api_key,
            timeout=timeout,
            ensemble=ensemble,
            ensemble_lambda=ensemble_lambda,
        )
        self.__name__ = "omnireward"  # TRL names the reward's log columns after this

    @property
    def scorer(self):
        return scorer_for(self.model, **self._options)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise RequestError(f"{len(prompts)} prompts but {len(completions)} completions", field="completions")
        scorer = self.scorer
        with scorer.lease() as lease:
            items = [
                self._item(i, p, c, kwargs, lease, scorer.default_system)
                for i, (p, c) in enumerate(zip(prompts, completions))
            ]
            lines = scorer.score(items, where=[f"completions[{i}]" for i in range(len(items))])
        rewards = [line["reward"] for line in lines]
        if self.normalize:
            rewards = [scorer.scale.normalized(r) for r in rewards]
        return rewards

    def _item(
        self, i: int, prompt: Any, completion: Any, columns: dict, lease: Lease, default_system: str | None
    ) -> Item:
        criteria = self.criteria
        if criteria is None and self.criteria_column in columns:
            value = columns[self.criteria_column][i]
            if value is not None and not isinstance(value, str):
                raise RequestError(
                    f"expected a string, got {type(value).__name__}", field=f"{self.criteria_column}[{i}]"
                )
            criteria = value or None
        fields = conversation_fields(
            prompt,
            completion,
            default_system=default_system,
            system_prompt_as_criteria=self.system_prompt_as_criteria,
            field=f"prompts[{i}]",
            response_field=f"completions[{i}]",
        )
        media = [
            m for col in MEDIA_COLUMNS if col in columns for m in cell_media(columns[col][i], col, lease, f"{col}[{i}]")
        ]
        resp = Response(text=fields.response or "")
        return Item(
            id=str(i),
            task=infer_task(media, [resp]),
            prompt=fields.prompt,
            response=resp,
            criteria=criteria if criteria is not None else fields.criteria,
            prompt_media=media,
        )
