"""OpenRLHF reward function file: pass this file's path as `--reward.remote_url` (`--remote_rm_url`
in OpenRLHF releases before its dotted options) and OpenRLHF calls `reward_func` in-process.

    export OMNIREWARD_MODEL=runs/demo-text          # a model folder, or http://127.0.0.1:8000
    --reward.remote_url $(python -c "import omnireward.integrations.openrlhf as m; print(m.__file__)")

`reward_func(queries, prompts, labels, **kwargs)` returns what `POST /get_reward` returns:
`{"rewards", "scores", "extra_logs"}` for the same queries (see
omnireward.serving.protocols.openrlhf for how a query splits into prompt and response). The model
loads once per process; concurrent calls (OpenRLHF runs them in threads) share forward passes.
"""

from __future__ import annotations

from omnireward.integrations.backend import scorer_for
from omnireward.serving.chat import check_mode
from omnireward.serving.protocols import Context
from omnireward.serving.protocols.openrlhf import items_from, respond


def reward_func(queries, prompts=None, labels=None, **kwargs) -> dict:
    """Rewards for OpenRLHF queries (prompt + response strings); `labels` are not used.

    Keyword options: `model` (folder or server URL; default $OMNIREWARD_MODEL; several folders, as a
    list or comma-separated, or a folder of them, are an ensemble), `ensemble` and `ensemble_lambda`
    (default $OMNIREWARD_ENSEMBLE, $OMNIREWARD_ENSEMBLE_LAMBDA), `criteria`,
    `system_prompt_as_criteria` ("auto", "always" or "never"; see omnireward.serving.chat).
    """
    mode = check_mode(kwargs.get("system_prompt_as_criteria", "auto"))
    scorer = scorer_for(
        kwargs.get("model"), ensemble=kwargs.get("ensemble"), ensemble_lambda=kwargs.get("ensemble_lambda")
    )
    items = items_from(
        list(queries),
        list(prompts) if prompts is not None else None,
        kwargs.get("criteria"),
        scorer.default_system,
        mode,
    )
    lines = scorer.score(items, where=[f"queries[{i}]" for i in range(len(items))])
    return respond(lines, None, Context(scale=scorer.scale))
