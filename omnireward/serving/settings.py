"""The server's limits and front-door settings (batching settings live in service.BatchSettings)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omnireward.errors import ConfigError
from omnireward.serving.chat import check_mode

API_KEY_ENV = "OMNIREWARD_API_KEY"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeSettings:
    """Where the server listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # None: read OMNIREWARD_API_KEY; "" or unset: no key
    max_body_mb: float = 64.0
    max_records_per_request: int = 1024
    max_media_mb: float = 32.0  # per inline media item
    request_timeout: float = 120.0  # seconds from arrival to answer
    media_root: str | Path = "."
    allow_outside_root: bool = False
    served_model_name: str | None = None  # echoed as `model` by /classify; default: the folder name
    system_prompt_as_criteria: str = "auto"  # auto|always|never (omnireward.serving.chat)
    quiet: bool = False
    routes: tuple[str, ...] = ()  # routes of the user's: PATH=MODULE (omnireward.serving.app.user_route)

    def check(self) -> ServeSettings:
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        for name, value in (
            ("max-body-mb", self.max_body_mb),
            ("max-media-mb", self.max_media_mb),
            ("request-timeout", self.request_timeout),
            ("max-records-per-request", self.max_records_per_request),
        ):
            if value <= 0:
                raise ConfigError(f"must be positive, got {value}", field=name)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"must be 0..65535, got {self.port}", field="port")
        check_mode(self.system_prompt_as_criteria, "system-prompt-as-criteria")
        if not Path(self.media_root).is_dir():
            raise ConfigError(f"not a folder: {self.media_root}", field="media-root")
        return self

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    @property
    def max_media_bytes(self) -> int:
        return int(self.max_media_mb * 2**20)

    @property
    def exposed(self) -> bool:
        """True when the server listens beyond this machine."""
        return self.host not in LOOPBACK
