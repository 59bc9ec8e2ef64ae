"""`omnireward serve`: the reward server for RL loops (FastAPI + uvicorn, cross-request batching)."""

from __future__ import annotations

from pathlib import Path

import typer

from omnireward.scoring.models import resolve_model

ROUTES_HELP = (
    "POST /score, /score_group (native), /get_reward (OpenRLHF), /classify and /pooling "
    "(vLLM pooling API, as verl posts it); GET /health, /info"
)
JUDGE_ROUTES_HELP = (
    "judge: POST /v1/chat/completions (OpenAI chat: critique and verdict), /judge (native pairs); GET /health, /info"
)


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the omnireward Typer app."""

    @app.command("serve")
    def serve_cmd(
        model: list[str] | None = typer.Option(
            None,
            "--model",
            help="Model folder (default: newest under runs/). Repeat it (--model A --model B), or name a "
            "folder of model folders (train ... ensemble.members=K), to serve an ensemble: every member "
            "scores each batch and the routes return the combined reward.",
        ),
        ensemble: str | None = typer.Option(
            None,
            help="With several models: mean|min|mean_minus_std, how the members' rewards (each normalised "
            "by its folder's reward statistics) are combined per response (default mean); see docs/guards.md.",
        ),
        ensemble_lambda: float = typer.Option(1.0, help="With --ensemble mean_minus_std: λ in mean - λ·std."),
        host: str = typer.Option(
            "127.0.0.1",
            help="Interface to listen on; the default is loopback only (0.0.0.0 exposes the server: set --api-key).",
        ),
        port: int = typer.Option(8000, help="TCP port (0: any free port)."),
        quant: str = typer.Option("none", help="4bit|8bit|none (bitsandbytes)."),
        device: str = typer.Option(
            "auto", help="auto|cpu|cuda|cuda:N, or several comma-separated (cuda:0,cuda:1): one replica set per device."
        ),
        workers_per_device: int = typer.Option(1, help="Model replicas (worker threads) per device."),
        max_batch_size: int = typer.Option(
            32,
            help="Most sequences per forward pass (a pair counts two); concurrent requests are merged up to this size.",
        ),
        batch_timeout: float = typer.Option(
            0.01,
            help="Seconds a free replica waits for more records "
            "before it runs a batch that is not full (counted from "
            "when the replica became free, or the oldest record "
            "arrived, whichever is later).",
        ),
        max_queue: int = typer.Option(16384, help="Most sequences waiting; past it requests get 503 (retry)."),
        api_key: str | None = typer.Option(
            None,
            help="Require this key (Authorization: Bearer KEY, X-API-Key, "
            "or ?api_key=KEY); default: $OMNIREWARD_API_KEY, or none.",
            show_default=False,
        ),
        max_body_mb: float = typer.Option(64.0, help="Largest request body (MiB); larger ones get 413."),
        max_records_per_request: int = typer.Option(
            1024,
            help="Most records (queries, inputs) per request; more get 413. Big requests are split into fair batches.",
        ),
        max_media_mb: float = typer.Option(32.0, help="Largest inline (data: URI) media item (MiB); 413 past it."),
        request_timeout: float = typer.Option(120.0, help="Seconds a request may wait for its rewards (504 after)."),
        media_root: Path = typer.Option(Path("."), help="Folder that media paths in requests resolve against."),
        allow_outside_root: bool = typer.Option(False, help="Allow media paths outside the media root."),
        served_model_name: str | None = typer.Option(
            None, help="Name /classify and /pooling echo as `model` (default: the model folder)."
        ),
        system_prompt_as_criteria: str = typer.Option(
            "auto",
            help="auto|always|never: which system turns of templated text and messages become "
            "criteria. auto: all but the default system prompts of common policy families "
            "and of the reward model's own template.",
        ),
        judge: str | None = typer.Option(
            None,
            help="omni|think|flex|flex_pointwise (or a template .yaml): serve "
            "the model (or, without --model, the embedded LM) as a "
            "generative judge. A judge folder is served as one without it. "
            "Judge routes: POST /v1/chat/completions, /judge.",
        ),
        max_new_tokens: int = typer.Option(256, help="Judge: critique length when a request gives no max_tokens."),
        quiet: bool = typer.Option(False, help="Do not log each request."),
        route: list[str] | None = typer.Option(
            None,
            "--route",
            help="A route of your own, PATH=MODULE (a module on the path or a .py file defining "
            "parse(body, lease, ctx) and respond(lines, parsed, ctx)); repeatable. See docs/extending.md.",
        ),
    ):
        """Serve rewards over HTTP for RL loops. Routes: POST /score and /score_group (native records),
        POST /get_reward (OpenRLHF's remote reward model), POST /classify and /pooling (vLLM's pooling
        API, as verl posts it), GET /health and GET /info. Requests from many clients are merged into
        shared forward passes. Stops on Ctrl-C."""
        # deferred: the serving package loads only for `serve` (keeps --help fast)
        from omnireward.serving import BatchSettings, ServeSettings, make_server
        from omnireward.serving.app import user_route

        settings = ServeSettings(
            host=host,
            port=port,
            api_key=api_key,
            max_body_mb=max_body_mb,
            max_records_per_request=max_records_per_request,
            max_media_mb=max_media_mb,
            request_timeout=request_timeout,
            media_root=media_root,
            allow_outside_root=allow_outside_root,
            served_model_name=served_model_name,
            system_prompt_as_criteria=system_prompt_as_criteria,
            quiet=quiet,
            routes=tuple(route or ()),
        ).check()
        yours = [user_route(spec) for spec in settings.routes]  # a bad module stops before the model loads
        batching = BatchSettings(
            max_batch_size=max_batch_size,
            batch_timeout=batch_timeout,
            workers_per_device=workers_per_device,
            max_queue=max_queue,
        ).check()
        models = [resolve_model(m) for m in model] if model else [resolve_model(None)] if not judge else None
        server = make_server(
            models[0] if models and len(models) == 1 and ensemble is None else models,
            settings=settings,
            batching=batching,
            quant=quant,
            device=device,
            judge=judge,
            max_new_tokens=max_new_tokens,
            ensemble=ensemble,
            ensemble_lambda=ensemble_lambda,
        )
        if settings.exposed and not settings.api_key:
            typer.echo(
                f"warning: listening on {host} without an API key; anyone who reaches this port can use "
                "the model (set --api-key or OMNIREWARD_API_KEY)",
                err=True,
            )
        routes = ROUTES_HELP if not hasattr(server.service, "routes") else JUDGE_ROUTES_HELP
        routes += "".join(f"\n  POST {path:<22} {summary}" for path, (_, _, summary) in yours)
        typer.echo(
            f"serving {server.service.info_fields['model']} on {server.url} "
            f"({len(server.service.models)} replica(s), batches of up to {batching.max_batch_size} "
            f"sequences{', API key required' if settings.api_key else ''})\n{routes}\nCtrl-C stops"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        typer.echo("stopped")
