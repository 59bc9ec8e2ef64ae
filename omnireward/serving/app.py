"""The FastAPI application: routes, API key, size limits, timeouts, and one-line JSON errors.

Every scoring route reads the body (413 past --max-body-mb), parses it into records in a worker
thread (400 naming the field), submits them to the service's shared batcher (503 when the queue
is full) and waits up to --request-timeout (504). Errors are `{"error": "<one line>"}`.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnireward import __version__
from omnireward.errors import AuthError, ConfigError, RequestError, RequestTooLarge
from omnireward.serving.batcher import ItemError, QueueFull
from omnireward.serving.protocols import Context, Parsed, native, openrlhf, vllm
from omnireward.serving.service import RequestTimeout, RewardService, located
from omnireward.serving.settings import ServeSettings

Parse = Callable[[Any, Any, Context], Parsed]
Respond = Callable[[list[dict], Parsed, Context], dict]


def _pooling_parse(body, lease, ctx):
    return vllm.parse(body, lease, ctx, default_activation=False)


ROUTES: dict[str, tuple[Parse, Respond, str]] = {
    "/score": (native.parse_score, native.respond_score, "native records -> omnireward score lines"),
    "/score_group": (native.parse_score_group, native.respond_score_group, "one prompt, N responses"),
    "/get_reward": (openrlhf.parse, openrlhf.respond, "OpenRLHF remote reward model"),
    "/classify": (vllm.parse, vllm.respond_classify, "vLLM pooling API (classify), as verl posts it"),
    "/pooling": (_pooling_parse, vllm.respond_pooling, "vLLM pooling API (pooling)"),
}


FIXED = ("/health", "/info", "/docs", "/openapi.json", "/redoc")


@cache
def user_route(spec: str) -> tuple[str, tuple[Parse, Respond, str]]:
    """A route of the user's from `PATH=MODULE`: MODULE (a module on the path, or a `.py` file)
    defines `parse(body, lease, ctx) -> Parsed` and `respond(lines, parsed, ctx) -> dict`, as the
    packaged protocols do; its docstring's first line is the route's summary. The route is served
    like the packaged ones: API key, size limits, shared batches, timeouts, one-line errors."""
    path, sep, name = spec.partition("=")
    if not sep or not path.startswith("/") or not name:
        raise ConfigError(f"expected PATH=MODULE (e.g. /prefer=my_routes), got {spec!r}", field="route")
    try:
        if name.endswith(".py"):
            file = Path(name).expanduser().resolve()
            if not file.is_file():
                raise ConfigError(f"no such file: {file}", field="route")
            module_spec = importlib.util.spec_from_file_location(f"omnireward_route_{file.stem}", file)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(name)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's module: any error while importing it is theirs
        raise ConfigError(
            f"cannot import {name} ({type(e).__name__}: {str(e).strip().splitlines()[0]})", field="route"
        ) from None
    missing = [f for f in ("parse", "respond") if not callable(getattr(module, f, None))]
    if missing:
        raise ConfigError(f"{name} defines no {' and no '.join(missing)} function", field="route")
    summary = ((module.__doc__ or "").strip().splitlines() or [f"{name} (the user's route)"])[0]
    return path, (module.parse, module.respond, summary)


def routes_of(service: RewardService, settings: ServeSettings) -> dict[str, tuple[Parse, Respond, str]]:
    """The service's routes (a judge service brings its own) and the user's, which may not take a
    path already served."""
    routes = dict(getattr(service, "routes", None) or ROUTES)
    for spec in settings.routes:
        path, route = user_route(spec)
        if path in routes or path in FIXED:
            raise ConfigError(f"{path} is already a route of the server; choose another path", field="route")
        routes[path] = route
    return routes


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise RequestError("JSON nested too deeply", field="body") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(f"invalid JSON ({e})", field="body") from None


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, refusing bodies over `limit` bytes before reading them whole."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise RequestError(f"not a number ({length!r})", field="Content-Length") from None
        if n > limit:
            raise RequestTooLarge(
                f"{n} bytes is over the {limit} byte limit (--max-body-mb); send fewer records per request",
                field="body",
            )
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise RequestTooLarge(
                f"over the {limit} byte limit (--max-body-mb); send fewer records per request", field="body"
            )
    if not buf:
        raise RequestError("empty; send a JSON body", field="body")
    return await run_in_threadpool(parse_json, bytes(buf))


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)


def make_app(service: RewardService, settings: ServeSettings) -> FastAPI:
    """The reward server's application around a loaded service."""
    settings.check()
    routes = routes_of(service, settings)
    ctx = Context(
        scale=service.scale,
        default_system=service.default_system,
        system_prompt_as_criteria=settings.system_prompt_as_criteria,
        max_records=settings.max_records_per_request,
        model_name=settings.served_model_name or str(service.info_fields.get("model", "omnireward")),
        reward_stats=service.stats,
    )
    app = FastAPI(title="omnireward reward server", version=__version__)
    key = settings.api_key

    def require_key(request: Request) -> None:
        if not key:
            return
        auth = request.headers.get("authorization", "")
        given = (
            (auth[7:].strip() if auth.lower().startswith("bearer ") else None)
            or request.headers.get("x-api-key")
            or request.query_params.get("api_key")
        )
        if not given or not hmac.compare_digest(given.encode(), key.encode()):
            raise AuthError(
                "missing or wrong API key: send 'Authorization: Bearer KEY' (or an X-API-Key header, or ?api_key=KEY)"
            )

    def route(parse: Parse, respond: Respond):
        async def endpoint(request: Request) -> JSONResponse:
            body = await read_json(request, settings.max_body_bytes)
            lease = service.media.lease()
            try:
                parsed = await run_in_threadpool(parse, body, lease, ctx)
                future = service.submit(parsed.records)
                try:
                    lines = await asyncio.wait_for(asyncio.wrap_future(future), settings.request_timeout)
                except asyncio.TimeoutError:
                    raise RequestTimeout(
                        f"not answered within {settings.request_timeout:g} s (--request-timeout)"
                    ) from None
                except ItemError as e:
                    raise located(e, parsed.where) from None
                return JSONResponse(respond(lines, parsed, ctx))
            finally:
                lease.release()

        return endpoint

    auth = [Depends(require_key)]
    for path, (parse, respond, summary) in routes.items():
        app.add_api_route(path, route(parse, respond), methods=["POST"], dependencies=auth, summary=summary)

    @app.get("/health", summary="liveness (no API key needed)")
    def health() -> dict:
        return {"status": "ok", "model": service.info_fields.get("model")}

    @app.get("/info", dependencies=auth, summary="model, objective, modalities, reward statistics, batching")
    def info() -> dict:
        return {
            **service.info(),
            "routes": {p: s for p, (_, _, s) in routes.items()},
            "limits": {
                "max_body_mb": settings.max_body_mb,
                "max_records_per_request": settings.max_records_per_request,
                "max_media_mb": settings.max_media_mb,
                "request_timeout": settings.request_timeout,
            },
            "auth": bool(key),
            "version": __version__,
        }

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError):
        headers = {"Connection": "close"} if isinstance(e, RequestTooLarge) else None
        return _error(e.status, str(e), headers)

    @app.exception_handler(QueueFull)
    async def _busy(request: Request, e: QueueFull):
        return _error(503, f"server busy: {e}; retry later", {"Retry-After": "1"})

    @app.exception_handler(RequestTimeout)
    async def _timeout(request: Request, e: RequestTimeout):
        return _error(504, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        if e.status_code in (404, 405):
            known = ", ".join([f"POST {p}" for p in routes] + ["GET /health", "GET /info"])
            return _error(e.status_code, f"no route {request.method} {request.url.path}; routes: {known}")
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        first = (str(e).strip().splitlines() or [""])[0]
        return _error(500, f"{type(e).__name__}: {first}")

    return app
