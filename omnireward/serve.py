"""`omnireward serve`: an HTTP reward server for RL loops (standard library only).

    POST /score        a list of native records, or {"records": [...]}
                       → {"results": [one `omnireward score` line per record]}
    POST /score_group  {"prompt", "responses": [...], "criteria"?, "prompt_media"?, "task"?}
                       → {"rewards", "normalized" (by reward_stats), "reward_stats", "best"}
    GET  /health       → {"status": "ok", "model", "quant", "device", "modalities", "reward_stats"}

One model forward runs at a time (a lock); each request's records are scored in batches.
A bad request gets a 400 with {"error": one line naming the field}.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from omnireward.errors import ConfigError, OmniRewardError

MAX_BODY = 64 * 1024 * 1024


class BadRequest(Exception):
    """A client mistake: answered with 400 and this one-line message."""


class RewardService:
    """A loaded reward model behind a lock, answering the server's three routes."""

    def __init__(self, model, *, batch_size: int = 16, stats: dict | None = None, media_root: str | Path = ".",
                 allow_outside_root: bool = False, info: dict | None = None):
        self.model = model.eval()
        self.batch_size = batch_size
        self.stats = stats
        self.media_root = Path(media_root).resolve()
        self.allow_outside_root = allow_outside_root
        self.info = info or {}
        self.lock = threading.Lock()

    def health(self) -> dict:
        return {"status": "ok", **self.info, "modalities": list(self.model.backbone.modalities),
                "batch_size": self.batch_size, "reward_stats": self.stats}

    def score(self, body: Any) -> dict:
        raw = body.get("records") if isinstance(body, dict) else body
        if not isinstance(raw, list):
            raise BadRequest("records: expected a list of records (or {\"records\": [...]})")
        if not raw:
            raise BadRequest("records: the list is empty")
        records = [self._record(r, f"records[{i}]", str(i)) for i, r in enumerate(raw)]
        return {"results": self._rewards(records)}

    def score_group(self, body: Any) -> dict:
        if not isinstance(body, dict):
            raise BadRequest("body: expected an object with prompt and responses")
        responses = body.get("responses")
        if not isinstance(responses, list) or not responses:
            raise BadRequest("responses: expected a non-empty list of responses (strings or {text, media})")
        shared = {k: body[k] for k in ("prompt", "criteria", "prompt_media", "task") if k in body}
        if not isinstance(shared.get("prompt"), str):
            raise BadRequest("prompt: expected a string")
        records = [self._record({**shared, "id": str(i), "response": resp}, "", str(i), field_of=f"responses[{i}]")
                   for i, resp in enumerate(responses)]
        rewards = [line["reward"] for line in self._rewards(records)]
        normalized = None
        if self.stats and self.stats.get("std"):
            normalized = [(r - self.stats["mean"]) / self.stats["std"] for r in rewards]
        return {"rewards": rewards, "normalized": normalized, "reward_stats": self.stats,
                "best": max(range(len(rewards)), key=rewards.__getitem__)}

    # ---- helpers --------------------------------------------------------------------------
    def _record(self, raw: Any, where: str, default_id: str, field_of: str | None = None):
        from omnireward.data.formats.common import Source, resolve_record
        from omnireward.data.records import record_from_dict

        try:
            rec = record_from_dict(raw, default_id=default_id)
            source = Source(file=Path("request"), root=self.media_root, allow_outside=self.allow_outside_root,
                            check_exists=True)
            return resolve_record(rec, source)
        except OmniRewardError as e:
            field = e.field or ""
            if field_of and field.startswith("response"):
                field = field_of + field[len("response"):]
            name = ".".join(x for x in (where, field) if x) or "body"
            raise BadRequest(f"{name}: {e.reason}") from None

    def _rewards(self, records) -> list[dict]:
        from omnireward.scoring.bt import reward_records

        with self.lock:
            try:
                return reward_records(self.model, records, self.batch_size, show_progress=False)
            except OmniRewardError as e:  # e.g. an image sent to a text-only model
                raise BadRequest(str(e)) from None


def _handler(service: RewardService, quiet: bool):
    class Handler(BaseHTTPRequestHandler):
        server_version = "omnireward"
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path.split("?")[0] == "/health":
                return self._send(HTTPStatus.OK, service.health())
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}; try GET /health"})

        def do_POST(self):
            route = {"/score": service.score, "/score_group": service.score_group}.get(self.path.split("?")[0])
            if route is None:
                self._drain()
                return self._send(HTTPStatus.NOT_FOUND,
                                  {"error": f"no route POST {self.path}; try POST /score or /score_group"})
            try:
                self._send(HTTPStatus.OK, route(self._body()))
            except BadRequest as e:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            except _TooLarge as e:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": str(e)}, close=True)
            except Exception as e:  # noqa: BLE001 - the server must outlive one bad request
                first = (str(e).strip().splitlines() or [""])[0]
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {first}"})

        def _drain(self):
            n = int(self.headers.get("Content-Length") or 0)
            if 0 < n <= MAX_BODY:
                self.rfile.read(n)

        def _body(self) -> Any:
            length = self.headers.get("Content-Length")
            if length is None:
                raise BadRequest("body: a Content-Length header is required")
            try:
                n = int(length)
            except ValueError:
                raise BadRequest(f"Content-Length: not a number ({length!r})") from None
            if n > MAX_BODY:
                raise _TooLarge(f"body: {n} bytes is over the {MAX_BODY} byte limit; send fewer records per request")
            data = self.rfile.read(n)
            try:
                return json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise BadRequest(f"body: invalid JSON ({e})") from None

        def _send(self, status: HTTPStatus, payload: dict, close: bool = False):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            if not quiet:
                super().log_message(fmt, *args)

    return Handler


class _TooLarge(Exception):
    pass


def make_server(model_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, quant: str = "none",
                batch_size: int = 16, device: str = "auto", media_root: str | Path = ".",
                allow_outside_root: bool = False, quiet: bool = False) -> ThreadingHTTPServer:
    """Load the model and bind the server (port 0: any free port); call `serve_forever()` on it."""
    from omnireward.scoring.load import load_for_scoring, pick_device

    if batch_size < 1:
        raise ConfigError(f"must be at least 1, got {batch_size}", field="batch-size")
    model = load_for_scoring(model_dir, quant=quant, device=device)
    info = {"model": str(model_dir), "quant": quant, "device": str(pick_device(device))}
    stats = model.reward_stats(model_dir)
    service = RewardService(model, batch_size=batch_size, stats=stats, media_root=media_root,
                            allow_outside_root=allow_outside_root, info=info)
    server = ThreadingHTTPServer((host, port), _handler(service, quiet))
    server.daemon_threads = True
    server.service = service
    return server
