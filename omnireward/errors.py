"""User-facing errors: one type per kind of mistake, printed as one line at the CLI edge."""

from __future__ import annotations

from pathlib import Path


class OmniRewardError(Exception):
    """Base of every error caused by user input or setup; the CLI prints `str(err)` and exits 2."""

    exit_code = 2

    def __init__(
        self, reason: str, *, file: str | Path | None = None, line: int | None = None, field: str | None = None
    ):
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.reason}"

    def at(self, *, file=None, line=None, field=None) -> OmniRewardError:
        """Fill in location details that the raiser did not know (keeps the ones it did)."""
        self.file = self.file or (str(file) if file is not None else None)
        self.line = self.line if self.line is not None else line
        self.field = self.field or field
        self.args = (self.format(),)
        return self


class DataFormatError(OmniRewardError):
    """A record or file does not follow a supported format (bad JSON, wrong types, bad labels)."""


class MediaError(OmniRewardError):
    """A media file is missing, unreadable, corrupt or of an unknown type."""


class MediaPathError(MediaError):
    """A media path escapes the media root."""


class ConfigError(OmniRewardError):
    """A Hydra config or override is invalid."""


class ModelError(OmniRewardError):
    """A model folder or hub id cannot be loaded, or no model is available."""


class DependencyError(OmniRewardError):
    """An optional dependency needed for this feature is not installed."""


class RequestError(OmniRewardError):
    """A request to the reward server (or an in-process hook) is malformed; HTTP 400."""

    status = 400


class RequestTooLarge(RequestError):
    """A request is over a size or count limit of the server; HTTP 413."""

    status = 413


class AuthError(RequestError):
    """A request to the reward server lacks the API key or carries a wrong one; HTTP 401."""

    status = 401


class ResumeError(OmniRewardError):
    """A run cannot continue from what it finds: a scores file under --out belongs to another run
    (model, input or options differ) or was not written by a resumable run (--overwrite starts
    over), or a training checkpoint does not fit the model its config builds."""
