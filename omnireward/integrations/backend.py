"""Where the in-process hooks get rewards: a model loaded once per process, or a running server.

`scorer_for(model)` takes a model folder (loaded with `RewardService.load`, so concurrent callers
in the process share forward passes) or an `http(s)://` URL of `omnireward serve` (records go
to its `/score` route, media inline as base64 `data:` URIs). Without `model`, the
`OMNIREWARD_MODEL` environment variable names one. Both give the same lines as `omnireward score`.

An ensemble (omnireward.scoring.ensemble) is several folders: a list, a comma-separated string
(also in `OMNIREWARD_MODEL`), or one folder of model folders. Its members load once per process
and score every batch together; the reward is the combination by `ensemble` (mean | min |
mean_minus_std; default `$OMNIREWARD_ENSEMBLE`, else mean) with λ = `ensemble_lambda` (default
`$OMNIREWARD_ENSEMBLE_LAMBDA`, else 1), on the members' normalised scale.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import threading
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

from omnireward.data import kinds
from omnireward.data.records import Record
from omnireward.errors import ConfigError, ModelError, RequestError
from omnireward.serving.media import Lease, MediaStore
from omnireward.serving.scale import RewardScale
from omnireward.serving.service import BatchSettings, RewardService

MODEL_ENV = "OMNIREWARD_MODEL"
ENSEMBLE_ENV = "OMNIREWARD_ENSEMBLE"
ENSEMBLE_LAMBDA_ENV = "OMNIREWARD_ENSEMBLE_LAMBDA"
API_KEY_ENV = "OMNIREWARD_API_KEY"


class LocalScorer:
    """A model folder loaded in this process, behind its own batcher."""

    def __init__(self, service: RewardService):
        self.service = service
        self.scale = service.scale
        self.default_system = service.default_system

    def lease(self) -> Lease:
        return self.service.media.lease()

    def score(self, records: list[Record], where: list[str] | None = None) -> list[dict]:
        return self.service.score(records, where=where)


class RemoteScorer:
    """A running `omnireward serve`, reached over HTTP."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0, chunk: int = 256):
        self.base = url.rstrip("/")
        for route in ("/score", "/get_reward", "/classify"):
            if self.base.endswith(route):
                self.base = self.base[: -len(route)]
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.chunk = chunk
        self.media = MediaStore(allow_outside_root=True)
        self._info: dict | None = None
        self._lock = threading.Lock()

    def _server_info(self) -> dict:
        with self._lock:
            if self._info is None:
                self._info = self._call("GET", "/info")
            return self._info

    @property
    def scale(self) -> RewardScale:
        return RewardScale.from_stats(self._server_info().get("reward_stats"))

    @property
    def default_system(self) -> str | None:
        """The reward model's own default system prompt (its copy in templated text is not criteria)."""
        return self._server_info().get("default_system")

    def lease(self) -> Lease:
        return self.media.lease()

    def score(self, records: list[Record], where: list[str] | None = None) -> list[dict]:
        out: list[dict] = []
        for start in range(0, len(records), self.chunk):
            body = {"records": [_wire(r) for r in records[start : start + self.chunk]]}
            out.extend(self._call("POST", "/score", body)["results"])
        return out

    def _call(self, method: str, route: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + route, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", e.reason)
            except (ValueError, AttributeError):
                message = e.reason
            raise RequestError(f"HTTP {e.code}: {message}", field=self.base + route) from None
        except (urllib.error.URLError, OSError) as e:
            raise ModelError(f"cannot reach the reward server at {self.base}: {getattr(e, 'reason', e)}") from None


def _wire(record: Record) -> dict:
    """A native record dict whose media travel inline as data: URIs."""
    d = record.to_dict()

    def inline(media: list[dict]) -> list[dict]:
        out = []
        for m in media:
            p = Path(m["path"])
            mime = kinds.mime_of_suffix(p.suffix) or mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            out.append({"type": m["type"], "path": f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode()}"})
        return out

    if "prompt_media" in d:
        d["prompt_media"] = inline(d["prompt_media"])
    for key in ("response", "response1", "response2"):
        if isinstance(d.get(key), dict) and "media" in d[key]:
            d[key]["media"] = inline(d[key]["media"])
    return d


def resolve_target(model: str | Path | list | tuple | None) -> str | tuple[str, ...]:
    """One folder or URL as a string; several folders (a list, or comma-separated) as a tuple."""
    target = model if model is not None else os.environ.get(MODEL_ENV)
    if isinstance(target, str) and "," in target and not target.startswith(("http://", "https://")):
        target = [t.strip() for t in target.split(",") if t.strip()]
    if target is not None and not isinstance(target, (str, Path)):  # a list (or a config's ListConfig)
        target = tuple(str(t) for t in target)
        if len(target) == 1:
            target = target[0]
    if not target:
        raise ConfigError(f"no reward model: pass a model folder or server URL, or set {MODEL_ENV}", field="model")
    return target if isinstance(target, tuple) else str(target)


def ensemble_options(ensemble: str | None, ensemble_lambda: float | None) -> tuple[str | None, float]:
    """The ensemble rule and λ: the arguments, else $OMNIREWARD_ENSEMBLE / $OMNIREWARD_ENSEMBLE_LAMBDA."""
    rule = ensemble if ensemble is not None else (os.environ.get(ENSEMBLE_ENV) or None)
    if ensemble_lambda is None:
        raw = os.environ.get(ENSEMBLE_LAMBDA_ENV) or "1.0"
        try:
            ensemble_lambda = float(raw)
        except ValueError:
            raise ConfigError(f"not a number ({raw!r})", field=ENSEMBLE_LAMBDA_ENV) from None
    return rule, float(ensemble_lambda)


@lru_cache(maxsize=8)
def _scorer(
    target: str | tuple[str, ...],
    quant: str,
    device: str,
    batch_size: int,
    api_key: str | None,
    timeout: float,
    rule: str | None = None,
    lam: float = 1.0,
):
    # Deferred: an HTTP client of a served model imports this module without torch; the ensemble
    # module loads the scoring stack.
    from omnireward.scoring.ensemble import is_ensemble_folder

    batching = BatchSettings(max_batch_size=batch_size, batch_timeout=0.005)
    urls = [t for t in (target if isinstance(target, tuple) else (target,)) if t.startswith(("http://", "https://"))]
    if urls and (isinstance(target, tuple) or rule is not None):
        raise ConfigError(
            "an ensemble is a list of model folders; a server URL is one model (serve the ensemble "
            "with `omnireward serve --model A --model B` and pass its URL alone)",
            field="model",
        )
    if isinstance(target, tuple) or rule is not None or is_ensemble_folder(target):
        service = RewardService.load_ensemble(
            list(target) if isinstance(target, tuple) else [target],
            rule=rule or "mean",
            lam=lam,
            quant=quant,
            devices=device,
            batching=batching,
        )
        return LocalScorer(service)
    if target.startswith(("http://", "https://")):
        return RemoteScorer(target, api_key=api_key, timeout=timeout)
    if not Path(target).exists():
        raise ModelError(f"model folder {target} does not exist")
    return LocalScorer(RewardService.load(target, quant=quant, devices=device, batching=batching))


_load_lock = threading.Lock()


def scorer_for(
    model: str | Path | None = None,
    *,
    quant: str = "none",
    device: str = "auto",
    batch_size: int = 32,
    api_key: str | None = None,
    timeout: float = 120.0,
    ensemble: str | None = None,
    ensemble_lambda: float | None = None,
) -> LocalScorer | RemoteScorer:
    """The scorer for a model folder, server URL or ensemble (several folders, or a folder of them);
    one per process and settings (loaded on first use).

    Frameworks make their first calls from several threads at once (OpenRLHF 0.11.2 runs reward_func
    in a thread per rollout): the first load happens once, under a lock, and the others wait for it."""
    # lru_cache alone lets concurrent first callers each load the model (and loading the same
    # checkpoint in several threads at once fails: "Cannot copy out of meta tensor").
    with _load_lock:
        rule, lam = ensemble_options(ensemble, ensemble_lambda)
        return _scorer(resolve_target(model), quant, device, batch_size, api_key, timeout, rule, lam)
