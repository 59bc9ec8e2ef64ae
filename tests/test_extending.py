"""docs/extending.md keeps true: a loss is a function plus a YAML file in a folder of the user's."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import write_jsonl

from omnireward.config import build, compose_config
from omnireward.errors import ConfigError

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.fixture
def user_conf(tmp_path, monkeypatch):
    """The doc's my_conf/ folder, written from the doc's own code blocks."""
    conf = tmp_path / "my_conf"
    (conf / "loss").mkdir(parents=True)
    python = next(b for b in _blocks("python") if "def focal_bt" in b)
    yaml = next(b for b in _blocks("yaml") if "my_losses.focal_bt" in b)
    (conf / "my_losses.py").write_text(python)
    (conf / "loss" / "focal_bt.yaml").write_text(yaml)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield conf
    sys.modules.pop("my_losses", None)


def test_a_user_loss_composes_builds_and_trains(user_conf, tmp_path, text_pairs):
    import torch

    from omnireward.train import train

    cfg = compose_config(["loss=focal_bt", "loss.gamma=1.0"], config_dirs=[user_conf])
    loss = build(cfg.model.loss)
    d, y = torch.tensor([2.0, -1.0]), torch.tensor([1, 1])
    assert loss(d, y, None) > 0 and loss.keywords["gamma"] == 1.0
    train_f, val_f = text_pairs
    out = train(
        compose_config(
            [
                "loss=focal_bt",
                "backbone=tiny",
                "trainer.max_epochs=1",
                f"data.train={train_f}",
                f"data.val={val_f}",
                f"output_dir={tmp_path / 'run'}",
            ],
            config_dirs=[user_conf],
        )
    )
    saved = (out / "omnireward.yaml").read_text()
    assert "my_losses.focal_bt" in saved
    assert json.loads((out / "train_summary.json").read_text())["global_steps"] > 0


def test_the_documented_command_line_runs(user_conf, tmp_path, text_pairs):
    from typer.testing import CliRunner

    from omnireward.cli.app import app

    command = next(line for line in _blocks("bash")[0].splitlines() if line.startswith("omnireward train"))
    train_f, val_f = text_pairs
    args = command.split()[2:] + [f"data.train={train_f}", f"data.val={val_f}", f"output_dir={tmp_path / 'cli'}"]
    args = [a.replace("my_conf", str(user_conf)) for a in args]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "modules.safetensors").exists()


def test_a_bad_user_option_fails_at_compose_time(user_conf):
    with pytest.raises(ConfigError, match="takes no option"):
        compose_config(["loss=focal_bt", "+loss.gama=1"], config_dirs=[user_conf])


@pytest.fixture
def signal_conf(tmp_path, monkeypatch):
    """The doc's modality example: my_conf/ with one loader, one encoder and one modality config,
    written from the doc's own code blocks."""
    conf = tmp_path / "signal_conf"
    (conf / "modality").mkdir(parents=True)
    (conf / "signal_loader.py").write_text(next(b for b in _blocks("python") if "def load_signal" in b))
    (conf / "signal_encoder.py").write_text(next(b for b in _blocks("python") if "class SignalEncoder" in b))
    (conf / "modality" / "signal.yaml").write_text(next(b for b in _blocks("yaml") if "SignalEncoder" in b))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield conf
    for name in ("signal_loader", "signal_encoder"):
        sys.modules.pop(name, None)


def _signal_pairs(folder: Path, n: int, seed: int) -> Path:
    """Pairs of two signals; the rising one is preferred."""
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        up = np.linspace(0, 1, 32) + 0.05 * rng.standard_normal(32)
        paths = []
        for kind, x in (("up", up), ("down", up[::-1].copy())):
            np.save(folder / f"{kind}{i}.npy", x)
            paths.append(f"{kind}{i}.npy")
        first_up = bool(i % 2)
        r_up, r_down = ({"media": [{"type": "signal", "path": p}]} for p in paths)
        rows.append(
            {
                "id": f"s{i}",
                "task": "text_to_text",
                "prompt": "Which signal rises?",
                "response1": r_up if first_up else r_down,
                "response2": r_down if first_up else r_up,
                "preference": "response1" if first_up else "response2",
            }
        )
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_user_modality_trains_and_scores(signal_conf, tmp_path):
    """One loader, one encoder, one config, in the user's folder: `train modality=signal` builds the
    encoder from its spec, and `score` reads the new media type."""
    from typer.testing import CliRunner

    from omnireward.cli.app import app
    from omnireward.data import kinds

    train_f = _signal_pairs(tmp_path / "train", 16, seed=1)
    val_f = _signal_pairs(tmp_path / "val", 6, seed=2)
    command = next(
        line
        for b in _blocks("bash")
        for line in b.splitlines()
        if line.startswith("omnireward train") and "signal" in line
    )
    args = command.split()[2:] + [
        f"data.val={val_f}",
        f"output_dir={tmp_path / 'run'}",
        "backbone.feature_cache=false",
        "data.batch_size=4",
        "logger.tensorboard=false",
    ]
    args = [
        a.replace("my_conf", str(signal_conf)).replace("data.train=train.jsonl", f"data.train={train_f}") for a in args
    ]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    assert kinds.get("signal") is not None
    run = tmp_path / "run"
    assert json.loads((run / "train_summary.json").read_text())["global_steps"] > 0
    assert "signal_encoder.SignalEncoder" in (run / "omnireward.yaml").read_text()

    # A new process, started elsewhere: the folder names the encoder and where it was trained from.
    out = tmp_path / "scores.jsonl"
    fresh = _fresh_score(val_f, run, out, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(r.get("reward1"), float) for r in rows), rows[0]

    # Moved away, the folder's encoder is not found: one line that says where it was and what to do.
    moved = signal_conf.rename(tmp_path / "elsewhere")
    lost = _fresh_score(val_f, run, tmp_path / "lost.jsonl", cwd=tmp_path)
    assert lost.returncode != 0
    message = lost.stderr.strip().splitlines()[-1]
    assert "signal_encoder.SignalEncoder" in message and str(signal_conf) in message and "PYTHONPATH" in message
    found = _fresh_score(val_f, run, tmp_path / "found.jsonl", cwd=tmp_path, pythonpath=moved)
    assert found.returncode == 0, found.stderr[-2000:]
    assert (tmp_path / "found.jsonl").read_text() == out.read_text()


def _fresh_score(pairs: Path, run: Path, out: Path, cwd: Path, pythonpath: Path | None = None):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = "from omnireward.cli.app import main; main()"
    args = ["score", str(pairs), "--model", str(run), "--out", str(out), "--device", "cpu"]
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def signal_kind(signal_conf):
    """The doc's encoder module imported: its media kind is registered."""
    import importlib

    sys.path.insert(0, str(signal_conf))
    importlib.import_module("signal_encoder")
    from omnireward.data import kinds

    yield kinds.get("signal")


def _signal_file(path: Path, values) -> Path:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(values, dtype="float32"))
    return path


def test_a_user_kind_is_validated_reported_and_served(signal_kind, tmp_path):
    """What the encoder file's MediaKind declares reaches `data validate`, reports and `serve`."""
    from omnireward.data.records import Media
    from omnireward.data.validate import validate
    from omnireward.errors import RequestError
    from omnireward.report.media import MediaShelf
    from omnireward.serving.media import Lease, MediaStore

    assert signal_kind.suffixes == (".npy",) and signal_kind.processor_input == "image"
    good = _signal_file(tmp_path / "data" / "up.npy", [0, 1, 2, 3])
    _signal_file(tmp_path / "data" / "empty.npy", [])
    row = {"id": "a", "prompt": "Which rises?", "preference": "response1"}
    rows = [
        {
            **row,
            "response1": {"media": [{"type": "signal", "path": "up.npy"}]},
            "response2": {"media": [{"type": "signal", "path": "empty.npy"}]},
        },
    ]
    pairs = tmp_path / "data" / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = [str(p) for p in validate(pairs)]
    assert len(problems) == 1 and "empty signal" in problems[0] and "response2.media[0]" in problems[0], problems

    shelf = MediaShelf(tmp_path / "report")
    html = shelf.html(Media("signal", str(good)))
    previews = list((tmp_path / "report" / "media").glob("*-preview.png"))
    assert len(previews) == 1 and previews[0].name in html and "up.npy" in html

    with Lease(MediaStore(tmp_path / "data")) as lease:
        assert lease.media(None, "up.npy", "f").type == "signal"  # the type from the kind's suffix
        with pytest.raises(RequestError, match="unknown media type 'sound'"):
            lease.media("sound", "up.npy", "f")


def test_a_user_kind_reaches_hf_backbones_as_its_processor_input(signal_kind, tmp_path):
    """The doc's signal goes to a vision-language checkpoint as its drawn image; an audio-only
    checkpoint refuses it in one line."""
    from _tiny_hf import save_qwen2_5_vl, save_qwen2_audio

    from omnireward.backbones.base import conversation
    from omnireward.backbones.hf import build_hf
    from omnireward.data.records import Media
    from omnireward.errors import ModelError

    up = Media("signal", str(_signal_file(tmp_path / "up.npy", [0, 1, 2, 3])))
    vl = build_hf(str(save_qwen2_5_vl(tmp_path / "vl")))
    batch = vl.processor([conversation(None, ["a signal"], [up])])
    assert batch.tensors["image_grid_thw"].shape[0] == 1
    audio_only = build_hf(str(save_qwen2_audio(tmp_path / "audio")))
    with pytest.raises(ModelError, match="does not read signal input"):
        audio_only.processor([conversation(None, ["a signal"], [up])])


def test_a_modality_entry_must_be_an_encoder():
    from omnireward.encoders import build_encoder

    with pytest.raises(ConfigError, match="is not an omnireward.encoders.base.Encoder"):
        build_encoder({"_target_": "torch.nn.Linear"})
    with pytest.raises(ConfigError, match="needs a _target_"):
        build_encoder({"length": 3})


def _conf_from_doc(root: Path, files: dict[str, str]) -> Path:
    """A my_conf/ folder whose files are the doc's code blocks (file -> a string the block holds)."""
    blocks = [b for kind in ("python", "yaml") for b in _blocks(kind)]
    for rel, marker in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(next(b for b in blocks if marker in b))
    return root


def _doc_command(marker: str) -> list[str]:
    line = next(line for b in _blocks("bash") for line in b.splitlines() if marker in line)
    return line.split()[2:]


def test_a_user_head_trains_and_scores_in_a_fresh_process(tmp_path, text_pairs, monkeypatch):
    """The doc's bounded head: one class and one YAML file in the user's folder."""
    from typer.testing import CliRunner

    from omnireward.cli.app import app

    monkeypatch.setattr(sys, "path", list(sys.path))
    conf = _conf_from_doc(tmp_path / "head_conf", {"my_heads.py": "class BoundedHead", "head/bounded.yaml": "my_heads"})
    train_f, val_f = text_pairs
    args = [a.replace("my_conf", str(conf)) for a in _doc_command("head=bounded")]
    run = tmp_path / "run"
    extra = [f"data.train={train_f}", f"data.val={val_f}", f"output_dir={run}", "logger.tensorboard=false"]
    result = CliRunner().invoke(app, ["train", *args, *extra])
    assert result.exit_code == 0, result.output
    sys.modules.pop("my_heads", None)
    assert "my_heads.BoundedHead" in (run / "omnireward.yaml").read_text()
    out = tmp_path / "scores.jsonl"
    fresh = _fresh_score(val_f, run, out, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    rewards = [
        r for line in out.read_text().splitlines() for r in (json.loads(line)["reward1"], json.loads(line)["reward2"])
    ]
    assert len(rewards) == 32 and all(abs(r) < 3.0 for r in rewards)  # head.bound=3.0 from the command
    assert len({round(r, 6) for r in rewards}) > 1


@pytest.fixture(scope="module")
def chelsea_pairs(tmp_path_factory):
    """Pairs about real photos (skimage): the answer naming what is shown beats a wrong one."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    truth = {"chelsea": "A cat.", "coffee": "A cup of coffee.", "astronaut": "An astronaut."}
    for name in truth:
        Image.fromarray(getattr(data, name)()).resize((56, 56)).save(root / f"{name}.png")
    rows = []
    for i in range(12):
        name = list(truth)[i % 3]
        wrong = truth[list(truth)[(i + 1) % 3]]
        first = i % 2 == 0
        rows.append(
            {
                "id": f"i{i}",
                "prompt": "What is in the picture?",
                "prompt_media": [{"type": "image", "path": f"{name}.png"}],
                "response1": truth[name] if first else wrong,
                "response2": wrong if first else truth[name],
                "preference": "response1" if first else "response2",
            }
        )
    return write_jsonl(root / "pairs.jsonl", rows)


def test_a_user_backbone_family_trains_and_scores(tmp_path, chelsea_pairs, monkeypatch):
    """The doc's Qwen2-VL family, registered from the user's module, on a tiny random checkpoint."""
    from _tiny_hf import save_qwen2_vl
    from typer.testing import CliRunner

    from omnireward.backbones.hf_family import FAMILIES
    from omnireward.cli.app import app

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr("omnireward.backbones.hf_family.FAMILIES", dict(FAMILIES))
    ckpt = save_qwen2_vl(tmp_path / "qwen2-vl")
    conf = _conf_from_doc(
        tmp_path / "family_conf", {"my_families.py": "register_family(", "backbone/qwen2_vl.yaml": "my_families.build"}
    )
    args = [
        a.replace("my_conf", str(conf))
        .replace("Qwen/Qwen2-VL-2B-Instruct", str(ckpt))
        .replace("data.train=train.jsonl", f"data.train={chelsea_pairs}")
        for a in _doc_command("backbone=qwen2_vl")
    ]
    run = tmp_path / "run"
    extra = [f"data.val={chelsea_pairs}", f"output_dir={run}", "trainer.max_epochs=1", "data.batch_size=4"]
    result = CliRunner().invoke(app, ["train", *args, *extra, "logger.tensorboard=false"])
    assert result.exit_code == 0, result.output
    sys.modules.pop("my_families", None)
    assert "qwen2_vl" in json.loads((run / "hf" / "config.json").read_text())["model_type"]
    out = tmp_path / "scores.jsonl"
    fresh = _fresh_score(chelsea_pairs, run, out, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert len(out.read_text().splitlines()) == 12


def test_a_user_route_is_served(tmp_path, text_pairs):
    """The doc's /prefer route beside the packaged ones: same batches and errors, and bad routes stop."""
    import math
    import urllib.error
    import urllib.request

    from omnireward.errors import ConfigError
    from omnireward.serving import ServeSettings, make_server
    from omnireward.train import train

    routes = tmp_path / "my_routes.py"
    routes.write_text(next(b for b in _blocks("python") if "def respond(" in b))
    train_f, val_f = text_pairs
    run = train(
        compose_config(
            ["backbone=tiny", "trainer.max_epochs=1", f"data.train={train_f}", f"data.val={val_f}"]
            + [f"output_dir={tmp_path / 'run'}", "logger.tensorboard=false"]
        )
    )

    def post(srv, path, body):
        req = urllib.request.Request(srv.url + path, data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    settings = ServeSettings(port=0, quiet=True, routes=(f"/prefer={routes}",))
    with make_server(run, settings=settings, device="cpu") as srv:
        body = {"prompt": "How do I brew tea?", "chosen": "Sure! Boil water first.", "rejected": "No."}
        status, got = post(srv, "/prefer", body)
        assert status == 200, got
        status, native = post(
            srv, "/score", [{"prompt": body["prompt"], "response1": body["chosen"], "response2": body["rejected"]}]
        )
        line = native["results"][0]
        assert got["margin"] == pytest.approx(line["reward1"] - line["reward2"], abs=1e-5)
        assert got["p_chosen"] == pytest.approx(1 / (1 + math.exp(-got["margin"])))
        assert post(srv, "/prefer", {"prompt": "x", "chosen": 3, "rejected": "y"}) == (
            400,
            {"error": "chosen: expected a string"},
        )
    for spec, why in (
        (f"/score={routes}", "already a route"),
        ("prefer=my_routes", "expected PATH=MODULE"),
        (f"/x={tmp_path / 'none.py'}", "no such file"),
        ("/x=json", "defines no parse and no respond function"),
    ):
        with pytest.raises(ConfigError, match=why):
            with make_server(run, settings=ServeSettings(port=0, quiet=True, routes=(spec,)), device="cpu"):
                pass


def test_kinds_and_families_refuse_what_would_shadow_the_packages_own(monkeypatch):
    """A user's kind may not take a packaged kind's name or suffixes, nor a family a packaged model_type."""
    from omnireward.backbones.hf_family import FAMILIES, Family, register_family
    from omnireward.data import kinds
    from omnireward.data.kinds import MediaKind

    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    with pytest.raises(ConfigError, match="one of the package's own"):
        kinds.register(MediaKind("image", suffixes=(".npy",)))
    with pytest.raises(ConfigError, match=r"suffixes \['.png'\] already belong to 'image'"):
        kinds.register(MediaKind("scan", suffixes=(".png",)))
    with pytest.raises(ConfigError, match="view must be one of"):
        MediaKind("scan", view="hologram")
    with pytest.raises(ConfigError, match="lower case with the dot"):
        MediaKind("scan", suffixes=("NPY",))
    assert kinds.register(MediaKind("image")) is kinds.get("image")  # a bare kind changes nothing
    assert kinds.of_suffix(".PNG").name == "image" and kinds.mime_of_suffix(".jpg") == "image/jpeg"

    monkeypatch.setattr("omnireward.backbones.hf_family.FAMILIES", dict(FAMILIES))
    with pytest.raises(ConfigError, match="already read as the qwen2_5_vl family"):
        register_family("qwen2_5_vl", Family("mine", "X", "Y", ("image",)))


def test_a_bad_route_stops_the_serve_command_before_any_model_loads(tmp_path):
    import subprocess

    bad = tmp_path / "half.py"
    bad.write_text("def parse(body, lease, ctx):\n    return None\n")
    code = "from omnireward.cli.app import main; main()"
    for spec, why in (("prefer=x", "expected PATH=MODULE"), (f"/half={bad}", "defines no respond function")):
        args = ["serve", "--model", str(tmp_path / "no-model"), "--route", spec]
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0] and "no-model" not in lines[0], result.stderr
