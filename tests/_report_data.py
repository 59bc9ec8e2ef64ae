"""A small native set with real media of every kind (image, video, audio, mesh) and scores for it,
as `omnireward score` writes them (BT lines or judge lines), for the report tests."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("text_to_image", "text_to_video", "text_to_audio", "text_to_3d", "text_to_text")


def _media(folder: Path) -> dict[str, str]:
    """Copies of package media inside `folder/m` (relative paths)."""
    from omnireward.data.demo.pairs import package_file

    m = folder / "m"
    m.mkdir(parents=True, exist_ok=True)
    shutil.copy(package_file("skimage", "data", "astronaut.png"), m / "astronaut.png")
    shutil.copy(package_file("skimage", "data", "chelsea.png"), m / "chelsea.png")
    shutil.copy(package_file("pyvista", "examples", "ant.ply"), m / "ant.ply")
    shutil.copy(ROOT / "tests/fixtures/videogen_rewardbench/videos/clip_a.mp4", m / "clip.mp4")
    shutil.copy(ROOT / "omnireward/assets/speech/en_s00_fast.flac", m / "speech.flac")
    return {
        "image": "m/astronaut.png",
        "image2": "m/chelsea.png",
        "mesh": "m/ant.ply",
        "video": "m/clip.mp4",
        "audio": "m/speech.flac",
    }


def _side(*items: tuple[str, str], text: str = "") -> dict:
    out = {"media": [{"type": t, "path": p} for t, p in items]}
    if text:
        out["text"] = text
    return out


def _responses(kind: str, media: dict) -> tuple:
    if kind == "text_to_image":
        return _side(("image", media["image"])), _side(("image", media["image2"]))
    if kind == "text_to_video":
        return _side(("video", media["video"])), _side(("video", media["video"]), text="a clip")
    if kind == "text_to_audio":
        return _side(("audio", media["audio"])), _side(("audio", media["audio"]))
    if kind == "text_to_3d":
        return _side(("mesh", media["mesh"])), _side(("image", media["image2"]))
    return "A helpful <b>answer</b> & more.", "A rude one."


def media_set(folder: Path, n: int = 40, seed: int = 0, judge: bool = False) -> tuple[Path, Path]:
    """(records.jsonl, records.scores.jsonl with its summary) in `folder`."""
    folder = Path(folder)
    media = _media(folder)
    rng = random.Random(seed)
    records, lines = [], []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        r1, r2 = _responses(kind, media)
        pref = ("response1", "response2", "tie")[i % 3]
        records.append(
            {
                "id": f"p{i:03d}",
                "task": kind,
                "prompt": f"Prompt {i}: make something <nice>",
                "criteria": "prefer the sharper one" if i % 2 else None,
                "response1": r1,
                "response2": r2,
                "preference": pref,
            }
        )
        m = {"response1": 1.0, "response2": -1.0, "tie": 0.0}[pref] + rng.gauss(0, 1.0)
        if judge:
            p1 = min(max(0.5 + m / 4, 0.02), 0.9)
            p2 = max(1 - p1 - 0.08, 0.0)
            line = {
                "id": f"p{i:03d}",
                "task": kind,
                "critique": f"Critique {i}: response A is <better>.",
                "verdict": max((("response1", p1), ("response2", p2), ("tie", 0.08)), key=lambda t: t[1])[0],
                "p_response1": p1,
                "p_response2": p2,
                "p_tie": 0.08,
                "margin": p1 - p2,
                "order_agreement": i % 4 != 0,
                "p_response1_by_order": [p1, max(p1 - 0.2 * (i % 4 == 0), 0)],
            }
            if i % 5:
                line["text_verdict"] = line["verdict"]
        else:
            line = {"id": f"p{i:03d}", "task": kind, "reward1": m / 2, "reward2": -m / 2, "margin": m}
        line["preference"] = pref
        lines.append(line)
    for r in records:
        if r["criteria"] is None:
            del r["criteria"]
    data = folder / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    scores = folder / "records.scores.jsonl"
    scores.write_text("".join(json.dumps(x) + "\n" for x in lines))
    (folder / "records.scores.summary.json").write_text(json.dumps({"input": str(data), "model": "tiny-test"}))
    return data, scores
