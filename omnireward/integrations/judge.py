"""A generative judge as the reward of an RL loop: in-process, or against `omnireward serve` running
a judge folder (or `--judge` on an LM).

    from omnireward.integrations.judge import JudgeReward
    trainer = GRPOTrainer(model=..., reward_funcs=[JudgeReward("runs/judge")], ...)   # or a server URL

TRL calls `reward(prompts=..., completions=..., **columns)`. With a `reference` column (the
name is `reference_column`), each completion is judged against its reference as Response A and
gets p(A wins) + p(tie)/2. Without one, the completions of the same prompt (GRPO's group) are
judged pair by pair and each gets its win rate: the mean over its pairs of p(win) + p(tie)/2,
as `omnireward.scoring.judge.group_scores` computes it. With `both_orders` (the default) each
pair is judged in both orders and averaged, so the position of a response does not decide it.
Rewards are in [0, 1]. Prompts and completions may be strings or chat messages (the last user
turn is the prompt; system turns are the criteria unless `criteria=` is given).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from itertools import combinations
from pathlib import Path
from typing import Any

from omnireward.data.records import Pair, Response
from omnireward.errors import ConfigError, RequestError
from omnireward.serving.batcher import ItemError
from omnireward.serving.service import BatchSettings, located

_LOCAL: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def is_url(model: str | None) -> bool:
    return bool(model) and str(model).startswith(("http://", "https://"))


class LocalJudge:
    """A judge loaded once per process behind the same batcher the server uses."""

    def __init__(
        self,
        model: str | None,
        *,
        judge: str | None = None,
        device: str = "auto",
        max_new_tokens: int = 256,
        batch_size: int = 16,
    ):
        # deferred: torch loads only for an in-process judge (a server URL needs none)
        from omnireward.serving.judge_service import JudgeService

        self.service = JudgeService.load(
            model,
            judge=judge,
            devices=device,
            max_new_tokens=max_new_tokens,
            batching=BatchSettings(max_batch_size=batch_size, batch_timeout=0.0),
        )
        if self.service.template.kind != "pairwise":
            name = self.service.template.name
            self.service.close()
            raise ConfigError(
                f"judge {name} is pointwise; JudgeReward compares responses (omni, think or flex)", field="judge"
            )

    def judge(self, pairs: list[Pair], *, both_orders: bool = False) -> list[dict]:
        # deferred: torch loads only for an in-process judge (a server URL needs none)
        from omnireward.serving.judge_service import PairWork

        try:
            return self.service.submit([PairWork(p, both_orders) for p in pairs]).result()
        except ItemError as e:
            raise located(e, [f"pairs[{i}]" for i in range(len(pairs))]) from None


class RemoteJudge:
    """POST /judge on a running judge server."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 300.0):
        self.url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OMNIREWARD_API_KEY")
        self.timeout = timeout

    def judge(self, pairs: list[Pair], *, both_orders: bool = False) -> list[dict]:
        body = {"pairs": [p.to_dict() for p in pairs], "both_orders": both_orders}
        return post_json(f"{self.url}/judge", body, api_key=self.api_key, timeout=self.timeout)["results"]


def post_json(url: str, body: dict, *, api_key: str | None = None, timeout: float = 300.0) -> dict:
    """POST `body`; a server's one-line error comes back as a RequestError."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", "")
        except ValueError:
            message = ""
        raise RequestError(f"HTTP {e.code}: {message or e.reason}", field=url) from None
    except urllib.error.URLError as e:
        raise RequestError(f"cannot reach the judge server ({e.reason})", field=url) from None


def judge_backend(model: str | Path | None, **options) -> LocalJudge | RemoteJudge:
    """A server URL, or a judge loaded here once per process and options."""
    if is_url(str(model) if model is not None else None):
        return RemoteJudge(str(model), api_key=options.get("api_key"), timeout=options.get("timeout", 300.0))
    key = (
        str(model) if model is not None else None,
        options.get("judge"),
        options.get("device", "auto"),
        options.get("max_new_tokens", 256),
        options.get("batch_size", 16),
    )
    with _LOCK:
        if key not in _LOCAL:
            _LOCAL[key] = LocalJudge(key[0], judge=key[1], device=key[2], max_new_tokens=key[3], batch_size=key[4])
        return _LOCAL[key]


def _text(content: Any, field: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise RequestError(f"expected a string or content parts, got {type(content).__name__}", field=field)


def prompt_and_criteria(prompt: Any, field: str) -> tuple[str, str | None]:
    """A prompt string, or chat messages: the last user turn, and the system turns as criteria."""
    if isinstance(prompt, str):
        return prompt, None
    if not isinstance(prompt, (list, tuple)) or not all(isinstance(m, dict) for m in prompt):
        raise RequestError("expected a string or a list of chat messages", field=field)
    users = [_text(m.get("content"), field) for m in prompt if m.get("role") == "user"]
    systems = [_text(m.get("content"), field) for m in prompt if m.get("role") == "system"]
    return (users[-1] if users else ""), ("\n".join(s for s in systems if s.strip()) or None)


def completion_text(completion: Any, field: str) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)):
        return "".join(
            _text(m.get("content"), field) for m in completion if isinstance(m, dict) and m.get("role") == "assistant"
        )
    raise RequestError("expected a string or a list of chat messages", field=field)


class JudgeReward:
    """`(prompts, completions, **columns) -> list[float]` from a judge folder, an LM with a judge
    template (`judge=`), or a judge server URL."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        judge: str | None = None,
        reference_column: str = "reference",
        both_orders: bool = True,
        criteria: str | None = None,
        device: str = "auto",
        max_new_tokens: int = 256,
        batch_size: int = 16,
        api_key: str | None = None,
        timeout: float = 300.0,
    ):
        self.model = str(model) if model is not None else None
        if is_url(self.model) and judge is not None:
            raise ConfigError(
                "a judge server already has its template; drop judge= or pass a model folder", field="judge"
            )
        self.reference_column = reference_column
        self.both_orders = both_orders
        self.criteria = criteria
        self._options = dict(
            judge=judge,
            device=device,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            api_key=api_key,
            timeout=timeout,
        )
        self.__name__ = "omnireward_judge"  # TRL names the reward's log columns after this

    @property
    def backend(self):
        return judge_backend(self.model, **self._options)

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise RequestError(f"{len(prompts)} prompts but {len(completions)} completions", field="completions")
        refs = columns.get(self.reference_column)
        texts = [completion_text(c, f"completions[{i}]").strip() for i, c in enumerate(completions)]
        asked = [prompt_and_criteria(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
        criteria = [self.criteria if self.criteria is not None else c for _, c in asked]

        def pair(i: int, a: str, b: str, k: int | None = None) -> Pair:
            return Pair(
                id=f"{i}" if k is None else f"{i}-{k}",
                task="text_to_text",
                prompt=asked[i][0],
                response1=Response(text=a),
                response2=Response(text=b),
                criteria=criteria[i],
            )

        if refs is not None:
            pairs = []
            for i, text in enumerate(texts):
                if not isinstance(refs[i], str) or not refs[i].strip():
                    raise RequestError(
                        "expected a reference response (a non-empty string)", field=f"{self.reference_column}[{i}]"
                    )
                pairs.append(pair(i, text, refs[i].strip()))
            return [
                line["p_response1"] + line["p_tie"] / 2
                for line in self.backend.judge(pairs, both_orders=self.both_orders)
            ]
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(json.dumps(p, sort_keys=True, default=str), []).append(i)
        index = [(i, k) for members in groups.values() for i, k in combinations(members, 2)]
        if any(len(m) < 2 for m in groups.values()):
            raise RequestError(
                f"a prompt with a single completion has nothing to be judged against: generate "
                f"at least two per prompt (num_generations) or give a '{self.reference_column}' "
                "column",
                field="completions",
            )
        lines = self.backend.judge([pair(i, texts[i], texts[k], k) for i, k in index], both_orders=self.both_orders)
        wins = [0.0] * len(texts)
        for (i, k), line in zip(index, lines):
            credit = line["p_response1"] + line["p_tie"] / 2
            wins[i] += credit
            wins[k] += 1 - credit
        size = {i: len(m) for m in groups.values() for i in m}
        return [wins[i] / (size[i] - 1) for i in range(len(texts))]
