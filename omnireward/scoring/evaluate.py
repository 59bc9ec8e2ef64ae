"""`omnireward eval`: accuracy with and without ties, from a scores file or by scoring a benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from omnireward.data.io import iter_raw
from omnireward.errors import DataFormatError
from omnireward.metrics import LABEL_SIGN
from omnireward.scoring.bt import summary_of


def read_scores(path: str | Path) -> list[dict]:
    """Lines of a scores file, each with `margin` (or reward1/reward2) and `preference`."""
    lines = []
    for line_no, obj in iter_raw(path):
        if not isinstance(obj, dict):
            raise DataFormatError("expected a JSON object", file=path, line=line_no)
        if "margin" not in obj:
            if "reward1" in obj and "reward2" in obj:
                obj = {**obj, "margin": _num(obj, "reward1", path, line_no) - _num(obj, "reward2", path, line_no)}
            elif "reward" in obj or "rewards" in obj:
                lines.append(obj)  # pointwise or group: not part of pair accuracy
                continue
            else:
                raise DataFormatError(
                    "needs 'margin' or 'reward1' and 'reward2'", file=path, line=line_no, field="margin"
                )
        _num(obj, "margin", path, line_no)
        pref = obj.get("preference")
        if pref is not None and pref not in LABEL_SIGN:
            raise DataFormatError(
                f"unknown preference label {pref!r} (expected response1, response2 or tie)",
                file=path,
                line=line_no,
                field="preference",
            )
        lines.append(obj)
    return lines


def _num(obj: dict, key: str, path, line_no) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DataFormatError(f"expected a number, got {type(v).__name__}", file=path, line=line_no, field=key)
    return float(v)


def is_scores_file(path: str | Path) -> bool:
    p = Path(path)
    if p.is_dir() or p.suffix != ".jsonl":
        return False
    for _, obj in iter_raw(p):
        return isinstance(obj, dict) and ("margin" in obj or "reward1" in obj or "reward" in obj or "rewards" in obj)
    return False


def eval_scores(path: str | Path, out: str | Path | None = None) -> dict:
    """Recompute the summary of a scores file; write it to `out` when given."""
    summary = summary_of(read_scores(path))
    summary["input"] = str(path)
    if out:
        Path(out).write_text(json.dumps(summary, indent=2))
    return summary
