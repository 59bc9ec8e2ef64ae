"""Training loggers from the `logger` group (TensorBoard by default, W&B, MLflow) and training's
progress bar with pairs per second."""

import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from omnireward.config import compose_config
from omnireward.errors import DependencyError
from omnireward.loggers import build_loggers
from omnireward.progress import PairsPerSecond, PairsProgressBar, pairs_in


def _logger_names(loggers):
    return [type(x).__name__ for x in loggers]


def test_tensorboard_is_the_default_and_writes_events(tmp_path):
    cfg = compose_config([])
    assert list(cfg.logger) == ["csv", "tensorboard"]
    assert cfg.logger.tensorboard._target_ == "lightning.pytorch.loggers.TensorBoardLogger"
    assert cfg.logger.tensorboard._optional_ is False  # required: a missing tensorboard stops the run
    loggers = build_loggers(cfg.logger, tmp_path)
    assert _logger_names(loggers) == ["CSVLogger", "TensorBoardLogger"]
    loggers[1].log_metrics({"train/loss": 0.5}, step=1)
    loggers[1].finalize("success")
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_missing_logger_package_is_one_line_error(monkeypatch, tmp_path, name):
    monkeypatch.setitem(sys.modules, name, None)  # import fails as if the package were not installed
    cfg = compose_config([f"logger={name}"])
    with pytest.raises(DependencyError) as e:
        build_loggers(cfg.logger, tmp_path)
    assert str(e.value) == f"logger: logger={name} needs the {name!r} package: pip install {name}"


def test_missing_logger_package_stops_the_cli_before_training(tmp_path):
    # Hide wandb whether or not it is installed: a module named wandb that fails to import.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(fake), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "omnireward.cli.app",
            "train",
            "logger=wandb",
            "backbone=tiny",
            f"output_dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 2
    expected = "error: logger: logger=wandb needs the 'wandb' package: pip install wandb"
    assert res.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "run" / "config.yaml").exists()  # stopped before the run started


def test_wandb_logs_offline_when_installed(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_config(["logger=wandb", f"output_dir={tmp_path}"])
    loggers = build_loggers(cfg.logger, tmp_path)
    assert _logger_names(loggers)[-1] == "WandbLogger"
    loggers[-1].log_metrics({"train/loss": 0.25}, step=3)
    loggers[-1].experiment.finish()
    runs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert runs and list(runs[0].glob("*.wandb"))


def test_mlflow_logs_to_a_local_store_when_installed(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    cfg = compose_config(["logger=mlflow", f"output_dir={tmp_path}"])
    loggers = build_loggers(cfg.logger, tmp_path)
    ml = loggers[-1]
    assert type(ml).__name__ == "MLFlowLogger"
    ml.log_metrics({"val/acc": 0.75}, step=2)
    ml.finalize("success")
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert [(m.value, m.step) for m in client.get_metric_history(ml.run_id, "val/acc")] == [(0.75, 2)]


def test_an_entry_set_to_false_is_left_out(tmp_path):
    cfg = compose_config(["logger=wandb", "logger.tensorboard=false", "logger.wandb=null"])
    assert _logger_names(build_loggers(cfg.logger, tmp_path)) == ["CSVLogger"]


def test_a_missing_required_tensorboard_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(DependencyError, match="logger=tensorboard needs the 'tensorboard' package"):
        build_loggers(compose_config([]).logger, tmp_path)
    # logger=csv takes TensorBoard only when it is installed
    assert _logger_names(build_loggers(compose_config(["logger=csv"]).logger, tmp_path)) == ["CSVLogger"]


MY_LOGGER = """
from lightning.pytorch.loggers import Logger


class ListLogger(Logger):
    \"\"\"Keeps every logged metric in a list and writes them to save_dir/metrics.txt.\"\"\"

    def __init__(self, save_dir, prefix=""):
        super().__init__()
        self._save_dir, self.prefix, self.rows = save_dir, prefix, []

    name = "list"
    version = "0"

    @property
    def save_dir(self):
        return self._save_dir

    def log_hyperparams(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, {self.prefix + k: float(v) for k, v in metrics.items()}))

    def finalize(self, status):
        import os

        os.makedirs(self._save_dir, exist_ok=True)
        with open(os.path.join(self._save_dir, "metrics.txt"), "w") as f:
            f.writelines(f"{s} {m}\\n" for s, m in self.rows)
"""

MY_LOGGER_YAML = """
defaults:
  - csv
  - _self_

mine:
  _target_: my_loggers.ListLogger
  save_dir: ${output_dir}/mine
  prefix: run/
"""


def test_a_user_logger_file_with_its_own_target_is_built_and_logs(tmp_path, monkeypatch):
    """A backend of the user's: one YAML file in DIR/logger/ naming a class beside it."""
    conf = tmp_path / "my_conf"
    (conf / "logger").mkdir(parents=True)
    (conf / "my_loggers.py").write_text(MY_LOGGER)
    (conf / "logger" / "mine.yaml").write_text(MY_LOGGER_YAML)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "my_loggers", raising=False)
    cfg = compose_config(["logger=mine"], config_dirs=[conf])
    loggers = build_loggers(cfg.logger, tmp_path / "run")
    assert _logger_names(loggers) == ["CSVLogger", "TensorBoardLogger", "ListLogger"]
    mine = loggers[-1]
    assert mine.save_dir == str(tmp_path / "run" / "mine") and mine.prefix == "run/"
    mine.log_metrics({"loss": 0.5}, step=4)
    mine.finalize("success")
    assert (tmp_path / "run" / "mine" / "metrics.txt").read_text() == "4 {'run/loss': 0.5}\n"
    # an option the class does not take stops at compose time
    from omnireward.errors import ConfigError

    with pytest.raises(ConfigError, match="ListLogger takes no option colour"):
        compose_config(["logger=mine", "+logger.mine.colour=red"], config_dirs=[conf])
    sys.modules.pop("my_loggers", None)


class _Pairs(L.LightningModule):
    """A minimal module whose batches are dicts of pairs, like the BT module's."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return ((self.w - batch["y"].float()) ** 2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", ((self.w - batch["y"].float()) ** 2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n, bs):
    data = [{"y": torch.tensor(i % 2)} for i in range(n)]
    return torch.utils.data.DataLoader(data, batch_size=bs)


def test_progress_bar_counts_pairs_and_renders_pairs_per_second(tmp_path):
    bar = PairsProgressBar()
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        enable_model_summary=False,
    )
    trainer.fit(_Pairs(), _loader(22, 4), _loader(10, 3))
    seen = bar.pairs_seen
    assert seen[bar.train_progress_bar_id] == 22  # the last epoch's pairs, last batch of 2 included
    assert seen[bar.val_progress_bar_id] == 10
    column = next(c for c in bar.progress.columns if isinstance(c, PairsPerSecond))
    task = next(t for t in bar.progress.tasks if t.id == bar.train_progress_bar_id)
    text = column.render(task).plain
    assert text.endswith(" pairs/s") and float(text.split()[0].replace(",", "")) > 0
    # The time column Lightning shows is elapsed • remaining (the ETA).
    assert any(type(c).__name__ == "CustomTimeColumn" for c in bar.progress.columns)


def test_pairs_in_batches_of_every_module():
    assert pairs_in({"y": torch.zeros(5), "inputs": None}) == 5
    assert pairs_in([1, 2, 3]) == 3
    assert pairs_in(object()) is None


def test_a_training_run_uses_the_pairs_bar_and_writes_tensorboard_events(tmp_path):
    from _deploy_utils import text_set
    from lightning.pytorch.callbacks import Callback

    from omnireward.train import train

    seen = {}

    class Spy(Callback):
        def on_fit_end(self, trainer, module):
            bar = trainer.progress_bar_callback
            seen["bar"] = type(bar).__name__
            seen["pairs"] = bar.pairs_seen.get(bar.train_progress_bar_id)

    data = text_set(tmp_path / "data", n_train=24, n_val=8, n_test=4)
    cfg = compose_config(
        [
            "backbone=tiny",
            f"data.train={data['train']}",
            f"data.val={data['val']}",
            f"output_dir={tmp_path / 'run'}",
            "trainer.max_epochs=1",
            "data.batch_size=8",
            "trainer.accelerator=cpu",
            "backbone.feature_cache=false",
        ]
    )
    out = train(cfg, callbacks=[Spy()])
    assert seen == {"bar": "PairsProgressBar", "pairs": 24}
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert "val/acc" in acc.Tags()["scalars"]


def test_training_log_shows_no_third_party_advert_or_warnings_about_others_code(tmp_path):
    """`omnireward train`'s own output, in a fresh process: Lightning's cloud-logger advert, the CSV
    logger's "exists and is not empty" warning about the run's own folder and torch's LeafSpec
    deprecation (raised on Lightning's code) are filtered where they are raised; a second run into a
    folder that already holds metrics.csv still gets the CSV warning (that file is overwritten)."""
    from _deploy_utils import text_set

    data = text_set(tmp_path / "data", n_train=16, n_val=8, n_test=4)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    cmd = [
        sys.executable,
        "-m",
        "omnireward.cli.app",
        "train",
        "backbone=tiny",
        f"data.train={data['train']}",
        f"data.val={data['val']}",
        f"output_dir={tmp_path / 'run'}",
        "trainer.max_epochs=1",
        "data.batch_size=8",
        "backbone.feature_cache=false",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    log = first.stdout + first.stderr
    assert "keeping epoch" in log or "val/acc" in log or "pairs" in log  # the run's own lines are there
    for noise in ("litlogger", "exists and is not empty", "LeafSpec"):
        assert noise not in log, noise
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "exists and is not empty" in again.stdout + again.stderr
