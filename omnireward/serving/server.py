"""Run the application on uvicorn: in the foreground (`omnireward serve`) or in a thread (tests,
benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from omnireward.errors import ConfigError
from omnireward.serving.app import make_app
from omnireward.serving.media import MediaStore
from omnireward.serving.service import BatchSettings, RewardService
from omnireward.serving.settings import ServeSettings


class RewardServer:
    """A bound socket, the uvicorn server over the app, and the service behind it."""

    def __init__(self, service: RewardService, settings: ServeSettings):
        self.service = service
        self.settings = settings.check()
        self.app = make_app(service, settings)
        self.socket = _bind(settings.host, settings.port)
        self.config = uvicorn.Config(
            self.app, log_level="warning", access_log=not settings.quiet, timeout_keep_alive=30, backlog=2048
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C / SIGTERM, then release the model and the spool."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.close()

    def start(self, timeout: float = 30.0) -> RewardServer:
        """Serve from a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="omnireward-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the reward server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.close()

    def close(self) -> None:
        self.service.close()
        self.socket.close()

    def __enter__(self) -> RewardServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}", field="port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(
    model_dir: str | Path | None,
    *,
    settings: ServeSettings | None = None,
    batching: BatchSettings | None = None,
    quant: str = "none",
    device: str = "auto",
    judge: str | None = None,
    max_new_tokens: int = 256,
    ensemble: str | None = None,
    ensemble_lambda: float = 1.0,
) -> RewardServer:
    """Load the model (one replica per device and worker) and bind the server; port 0 takes any free port.
    A judge folder, or `judge` (a template name or YAML) on any LM, serves the judge's routes
    (omnireward.serving.judge_routes) instead of the reward routes. Several model folders (a list),
    a folder of model folders, or `ensemble` (mean | min | mean_minus_std, λ = `ensemble_lambda`)
    serve an ensemble: every member scores each batch and the routes return the combined reward."""
    # deferred: torch loads only when models are loaded
    from omnireward.scoring.ensemble import check_rule, is_ensemble_folder

    settings = (settings or ServeSettings()).check()
    batching = (batching or BatchSettings()).check()
    members = None
    if isinstance(model_dir, (list, tuple)):
        if len(model_dir) == 1 and ensemble is None and not is_ensemble_folder(model_dir[0]):
            model_dir = model_dir[0]
        else:
            members = list(model_dir)
    elif model_dir is not None and (ensemble is not None or is_ensemble_folder(model_dir)):
        members = [model_dir]
    if members is not None:
        if judge:
            raise ConfigError("an ensemble serves reward models; --judge serves one judge", field="judge")
        check_rule(ensemble or "mean", ensemble_lambda)
    media = MediaStore(
        settings.media_root, allow_outside_root=settings.allow_outside_root, max_item_bytes=settings.max_media_bytes
    )
    # deferred: torch loads only when models are loaded
    from omnireward.serving.judge_service import JudgeService, is_judge

    if members is not None:
        try:
            service = RewardService.load_ensemble(
                members,
                rule=ensemble or "mean",
                lam=ensemble_lambda,
                quant=quant,
                devices=device,
                batching=batching,
                media=media,
            )
        except BaseException:
            media.close()
            raise
    elif judge or is_judge(model_dir):
        if quant != "none":
            media.close()
            raise ConfigError(
                "--quant applies to reward models; a judge serves in the precision its backbone loads in", field="quant"
            )
        service = JudgeService.load(
            model_dir, judge=judge, devices=device, batching=batching, media=media, max_new_tokens=max_new_tokens
        )
    else:
        service = RewardService.load(model_dir, quant=quant, devices=device, batching=batching, media=media)
    try:
        return RewardServer(service, settings)
    except BaseException:
        service.close()
        raise
