"""`omnireward serve`: an HTTP reward server (POST /score, POST /score_group, GET /health)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the omnireward Typer app."""

    @app.command("serve")
    def serve_cmd(
        model: str | None = typer.Option(None, "--model", help="Model folder (default: newest under runs/)."),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 exposes it to the network)."),
        port: int = typer.Option(8000, help="TCP port (0: any free port)."),
        quant: str = typer.Option("none", help="4bit|8bit|none (bitsandbytes)."),
        batch_size: int = typer.Option(16, help="Sequences per forward pass."),
        device: str = typer.Option("auto", help="auto|cpu|cuda|cuda:N"),
        media_root: Path = typer.Option(Path("."), help="Folder that relative media paths in requests resolve against."),
        allow_outside_root: bool = typer.Option(False, help="Allow media paths outside the media root."),
        quiet: bool = typer.Option(False, help="Do not log each request."),
    ):
        """Serve rewards over HTTP for RL loops: POST /score (records), POST /score_group (one prompt,
        N responses), GET /health. Stops on Ctrl-C."""
        from omnireward.scoring.models import resolve_model
        from omnireward.serve import make_server

        server = make_server(resolve_model(model), host=host, port=port, quant=quant, batch_size=batch_size,
                             device=device, media_root=media_root, allow_outside_root=allow_outside_root,
                             quiet=quiet)
        h, p = server.server_address[:2]
        typer.echo(f"serving {server.service.info['model']} on http://{h}:{p} "
                   "(POST /score, POST /score_group, GET /health); Ctrl-C stops")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            typer.echo("stopped")
        finally:
            server.server_close()
