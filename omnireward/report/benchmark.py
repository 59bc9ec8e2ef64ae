"""Which known benchmark a file is, from its format (`--benchmark` overrides it)."""

from __future__ import annotations

from pathlib import Path

from omnireward.data.formats import detect_format
from omnireward.errors import ConfigError, OmniRewardError

# Reader name → benchmark name, for readers that only ever read one benchmark.
FORMAT_BENCHMARK = {
    "omnirewardbench": "omnirewardbench",
    "vlrewardbench": "vlrewardbench",
    "genaibench": "genaibench",
    "rewardbench": "rewardbench",
    "videogenrewardbench": "videogenrewardbench",
    "rewardbench2": "rewardbench2",
    "mmrb2": "mmrb2",
    "mmrewardbench": "mmrewardbench",
    "editrewardbench": "editrewardbench",
    "mjbench": "mjbench",
}
BENCHMARKS = tuple(sorted(set(FORMAT_BENCHMARK.values())))


def identify(path: str | Path | None, explicit: str | None = None) -> str | None:
    """The benchmark `path` belongs to, or None for other data (native files, TRL, ...)."""
    if explicit:
        name = explicit.lower().replace("-", "").replace("_", "")
        if name not in BENCHMARKS:
            raise ConfigError(f"unknown benchmark {explicit!r} (known: {', '.join(BENCHMARKS)})", field="--benchmark")
        return name
    if path is None or not Path(path).exists():
        return None
    try:
        return FORMAT_BENCHMARK.get(detect_format(path))
    except OmniRewardError:
        return None
