"""`omnireward serve`: a reward server for RL loops, on FastAPI + uvicorn.

    batcher.py    concurrent requests -> shared forward passes (fair round-robin, failure isolation)
    service.py    model replicas behind the batcher; what routes and in-process hooks call
    protocols/    request/response shapes: native, OpenRLHF /get_reward, vLLM /classify and /pooling
    chat.py       chat-templated text back into prompt, response and criteria
    media.py      media paths under the media root, base64 data: URIs, a content-addressed spool
    scale.py      raw rewards -> z-scores and [0, 1] scores by the folder's reward statistics
    settings.py   limits, API key, bind address
    app.py        the FastAPI application
    server.py     uvicorn in the foreground or in a thread

The server's dependencies come with the `serve` extra: pip install "omnireward[serve]".
"""

from __future__ import annotations

from omnireward.errors import DependencyError
from omnireward.serving.service import BatchSettings, RewardService
from omnireward.serving.settings import ServeSettings

__all__ = ["BatchSettings", "RewardService", "ServeSettings", "make_server"]


def make_server(*args, **kwargs):
    """Load a model folder and bind a RewardServer (see omnireward.serving.server.make_server)."""
    try:
        # deferred: FastAPI and uvicorn are optional (omnireward[serve])
        from omnireward.serving.server import make_server as _make
    except ImportError as e:
        raise DependencyError(
            f'the reward server needs FastAPI and uvicorn ({e.name} is missing); pip install "omnireward[serve]"'
        ) from None
    return _make(*args, **kwargs)
