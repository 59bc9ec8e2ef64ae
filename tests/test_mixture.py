"""Weighted training mixtures: per-epoch counts follow the weights, draws depend only on
(seed, epoch), max_pairs caps a source, the run folder records the mixture, bad entries fail in one
line naming the field."""

import json
import logging
from collections import Counter

import pytest
import torch
from conftest import helpful_vs_rude, write_jsonl
from test_train import StopAfterFirstEpoch

from omnireward.config import compose_config
from omnireward.data.datamodule import EpochShuffleSampler, PreferenceDataModule
from omnireward.data.mixture import MixtureSampler, length_grouped, mixture_order, pairs_per_epoch
from omnireward.data.needs import DataNeeds
from omnireward.errors import ConfigError
from omnireward.train import MIXTURE_NAME, SUMMARY_NAME, train


@pytest.fixture
def sources(tmp_path):
    """Two files of different sizes (ids a* and b*) and a validation file."""
    a = write_jsonl(tmp_path / "a.jsonl", [{**r, "id": f"a{i}"} for i, r in enumerate(helpful_vs_rude(30, seed=1))])
    b = write_jsonl(tmp_path / "b.jsonl", [{**r, "id": f"b{i}"} for i, r in enumerate(helpful_vs_rude(12, seed=2))])
    val = write_jsonl(tmp_path / "val.jsonl", helpful_vs_rude(8, seed=3, start=500))
    return a, b, val


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def _per_source(order, sizes):
    """How many draws of each source, and of each pair, one epoch makes."""
    bounds = torch.tensor(sizes).cumsum(0).tolist()
    which = [next(s for s, end in enumerate(bounds) if i < end) for i in order]
    return Counter(which), Counter(order)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0), (0.3, 2.5), (1.7, 0.25)])
def test_each_epoch_draws_round_weight_times_size_of_each_source(weights):
    sizes = [30, 12]
    sampler = MixtureSampler(sizes, weights, seed=5)
    expected = [pairs_per_epoch(w, n) for w, n in zip(weights, sizes)]
    assert len(sampler) == sum(expected)
    for epoch in range(4):
        order = _epoch(sampler, epoch)
        per_source, per_pair = _per_source(order, sizes)
        assert [per_source[0], per_source[1]] == expected  # exact, every epoch
        for s, (n, w) in enumerate(zip(sizes, weights)):
            offset = sum(sizes[:s])
            draws = [per_pair[i] for i in range(offset, offset + n)]
            # whole copies, then a subset without replacement: each pair floor(w) or floor(w)+1 times
            assert set(draws) <= {int(w), int(w) + 1}, (w, draws)


def test_one_source_at_weight_one_is_a_plain_permutation_and_each_pair_once():
    sampler = EpochShuffleSampler(17, seed=3)
    sampler.set_epoch(2)
    g = torch.Generator().manual_seed(3 * 1_000_003 + 2)
    assert list(sampler) == torch.randperm(17, generator=g).tolist()
    assert sorted(sampler) == list(range(17))


def test_draws_depend_only_on_seed_and_epoch():
    sizes, weights = [30, 12], [0.5, 1.5]
    a, b = MixtureSampler(sizes, weights, seed=1), MixtureSampler(sizes, weights, seed=1)
    assert _epoch(a, 0) == _epoch(b, 0) and _epoch(a, 3) == _epoch(b, 3)
    # A new epoch draws a different half of the first source, in a different order.
    e0, e1 = _epoch(a, 0), _epoch(a, 1)
    assert e0 != e1 and {i for i in e0 if i < 30} != {i for i in e1 if i < 30}
    assert _epoch(MixtureSampler(sizes, weights, seed=2), 0) != e0
    # Resume: a sampler made afresh (as after a restart) and set to epoch 3 gives the epoch the
    # uninterrupted one gave after epochs 0-2.
    uninterrupted = MixtureSampler(sizes, weights, seed=1)
    for e in range(3):
        _epoch(uninterrupted, e)
    assert _epoch(MixtureSampler(sizes, weights, seed=1), 3) == _epoch(uninterrupted, 3)


def test_ranks_split_the_one_epoch_order_between_them():
    sizes, weights = [30, 12], [0.5, 2.0]
    whole = mixture_order(sizes, weights, seed=4, epoch=1)
    ranks = [MixtureSampler(sizes, weights, seed=4, num_replicas=3, rank=r) for r in range(3)]
    parts = [_epoch(s, 1) for s in ranks]
    assert len({len(p) for p in parts}) == 1  # same number of steps on every rank
    padded = whole + whole[: 3 * len(parts[0]) - len(whole)]
    assert [x for step in zip(*parts) for x in step] == padded


def _padding(order, lengths, batch):
    """Padded positions a pass over `order` in batches of `batch` costs."""
    steps = [order[i : i + batch] for i in range(0, len(order), batch)]
    return sum(max(lengths[i] for i in s) * len(s) - sum(lengths[i] for i in s) for s in steps)


def _random_lengths(n, seed):
    return torch.randint(8, 400, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("window", [2, 4, 16])
def test_length_grouping_keeps_the_epoch_and_cuts_padding(window):
    sizes, weights = [30, 12], [1.0, 2.0]
    lengths = _random_lengths(sum(sizes), 0)
    plain = MixtureSampler(sizes, weights, seed=3)
    grouped = MixtureSampler(sizes, weights, seed=3, lengths=lengths, batch_size=4, group_by_length=window)
    for epoch in range(3):
        p, g = _epoch(plain, epoch), _epoch(grouped, epoch)
        assert sorted(g) == sorted(p) and g != p  # the same draws, reordered
        assert _padding(g, lengths, 4) < _padding(p, lengths, 4)
        # Each window of `window` batches holds the pairs of the same window of the plain order,
        # cut into batches of increasing length, the batches in shuffled order.
        span = 4 * window
        for s in range(0, len(p), span):
            assert sorted(g[s : s + span]) == sorted(p[s : s + span])
            batches = [g[s : s + span][i : i + 4] for i in range(0, len(g[s : s + span]), 4)]
            flat = sorted(batches, key=lambda b: min(lengths[i] for i in b))
            assert all(max(lengths[i] for i in a) <= min(lengths[i] for i in b) for a, b in zip(flat, flat[1:]))
    # Deterministic in (seed, epoch): a fresh sampler (as after a restart) gives the same epoch.
    again = MixtureSampler(sizes, weights, seed=3, lengths=lengths, batch_size=4, group_by_length=window)
    assert _epoch(again, 2) == _epoch(grouped, 2)
    assert _epoch(grouped, 1) != _epoch(grouped, 2)


def test_length_grouped_batches_come_in_random_order_not_shortest_first():
    lengths = list(range(64))
    orders = [length_grouped(list(range(64)), lengths, 4, 16, seed=s, epoch=0) for s in range(4)]
    assert all(sorted(o) == list(range(64)) for o in orders)
    assert len({tuple(o) for o in orders}) == 4
    assert all(o != sorted(o) for o in orders)
    # Within each batch the pairs are neighbours in length.
    assert all(max(o[i : i + 4]) - min(o[i : i + 4]) == 3 for o in orders for i in range(0, 64, 4))


def test_off_means_the_plain_order():
    sizes, weights = [30, 12], [0.5, 2.0]
    lengths = _random_lengths(42, 1)
    for window in (0, 1):
        s = MixtureSampler(sizes, weights, seed=2, lengths=lengths, batch_size=4, group_by_length=window)
        assert _epoch(s, 1) == mixture_order(sizes, weights, seed=2, epoch=1)


def test_length_grouped_ranks_together_take_the_one_process_global_batches():
    """Under DDP a step's global batch (batch × W pairs) is the one a single process with that
    batch would take: grouping acts on global batches, before the ranks split them."""
    sizes, weights, lengths, batch, world = [30, 12], [1.0, 1.5], _random_lengths(42, 2), 3, 2
    one = MixtureSampler(sizes, weights, seed=5, lengths=lengths, batch_size=batch * world, group_by_length=4)
    ranks = [
        MixtureSampler(
            sizes, weights, seed=5, num_replicas=world, rank=r, lengths=lengths, batch_size=batch, group_by_length=4
        )
        for r in range(world)
    ]
    whole, parts = _epoch(one, 0), [_epoch(s, 0) for s in ranks]
    steps = len(parts[0]) // batch
    for k in range(steps):
        global_batch = sorted(x for p in parts for x in p[k * batch : (k + 1) * batch])
        assert global_batch == sorted(whole[k * batch * world : (k + 1) * batch * world])


def test_lengths_must_cover_every_pair():
    with pytest.raises(ValueError, match="41 lengths for 42 pairs"):
        MixtureSampler([30, 12], [1.0, 1.0], lengths=[1] * 41, batch_size=2, group_by_length=4)


@pytest.mark.parametrize("bad", [-1, None, "abc", 2.5, True])
def test_a_bad_group_by_length_fails_naming_the_field(sources, bad):
    with pytest.raises(ConfigError, match="data.group_by_length"):
        PreferenceDataModule(train=str(sources[0]), group_by_length=bad)


def test_the_datamodule_groups_its_training_batches_by_length(sources):
    a, _, _ = sources
    dm = PreferenceDataModule(train=str(a), batch_size=4, seed=1)
    dm.setup()
    dm.needs = DataNeeds(collate=lambda batch: batch)
    assert dm.group_by_length == 16  # the default
    loader = dm.train_dataloader()
    assert loader.sampler.lengths is not None and loader.sampler.batch_size == 4
    ids = [r.id for b in loader for r in b]
    assert sorted(ids) == sorted(r.id for r in dm.splits["train"])
    off = PreferenceDataModule(train=str(a), batch_size=4, seed=1, group_by_length=0)
    off.setup()
    off.needs = dm.needs
    assert off.train_dataloader().sampler.lengths is None


def test_datamodule_reads_sources_caps_and_counts(sources):
    a, b, _ = sources
    dm = PreferenceDataModule(
        train=[{"path": str(a), "weight": 0.5, "max_pairs": 20}, {"path": str(b), "format": "native", "weight": 2}],
        seed=7,
        batch_size=4,
    )
    dm.setup()
    assert [(m["pairs_read"], m["pairs_kept"], m["pairs_per_epoch"]) for m in dm.mixture] == [
        (30, 20, 10),
        (12, 12, 24),
    ]
    assert dm.train_pairs_per_epoch == 34
    ids = [p.id for p in dm.splits["train"]]
    kept_a = {i for i in ids if i.startswith("a")}
    assert len(kept_a) == 20 and len(ids) == 32
    # The cap keeps the same pairs every time (seeded), and another seed keeps another subset.
    again = PreferenceDataModule(train=[{"path": str(a), "max_pairs": 20}], seed=7)
    again.setup()
    assert {p.id for p in again.splits["train"]} == kept_a
    other = PreferenceDataModule(train=[{"path": str(a), "max_pairs": 20}], seed=8)
    other.setup()
    assert {p.id for p in other.splits["train"]} != kept_a
    # Every epoch draws only kept pairs, 10 of the capped source and 24 of the other.
    dm.needs = DataNeeds(collate=list)
    dm.trainer = None
    loader = dm.train_dataloader()
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        seen = [p.id for batch in loader for p in batch]
        assert sum(i.startswith("a") for i in seen) == 10 and set(i for i in seen if i.startswith("a")) <= kept_a
        assert Counter(i for i in seen if i.startswith("b")) == {f"b{k}": 2 for k in range(12)}


def test_a_plain_path_still_works(sources):
    a, _, _ = sources
    dm = PreferenceDataModule(train=str(a), seed=0)
    dm.setup()
    assert len(dm.splits["train"]) == 30 and dm.train_pairs_per_epoch == 30


@pytest.mark.parametrize(
    "entry,field,needle",
    [
        ({"weight": 2}, "data.train[1].path", "missing path"),
        ({"path": "nowhere/missing.jsonl"}, "data.train[1].path", "no such file"),
        ({"path": "A", "weight": -1}, "data.train[1].weight", "weight must be a number > 0"),
        ({"path": "A", "weight": 0}, "data.train[1].weight", "weight must be a number > 0"),
        ({"path": "A", "wieght": 2}, "data.train[1].wieght", "unknown key"),
        ({"path": "A", "max_pairs": 0}, "data.train[1].max_pairs", "max_pairs"),
        ({"path": "A", "format": "csv"}, "data.train[1].format", "unknown format"),
    ],
)
def test_a_bad_entry_fails_in_one_line_naming_the_field(sources, entry, field, needle):
    a, _, _ = sources
    entry = {k: (str(a) if v == "A" else v) for k, v in entry.items()}
    with pytest.raises(ConfigError) as e:
        PreferenceDataModule(train=[str(a), entry])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{field}: ") and needle in msg


def test_val_takes_one_path(sources):
    a, b, _ = sources
    with pytest.raises(ConfigError, match=r"^data.val: takes one path"):
        PreferenceDataModule(train=str(a), val=[str(a), str(b)])


def _run_overrides(a, b, val, out, *extra):
    mixture = f"data.train=[{{path:'{a}',weight:0.5}},{{path:'{b}',weight:1.5,max_pairs:10}}]"
    return [
        "backbone=tiny",
        mixture,
        f"data.val={val}",
        f"output_dir={out}",
        "model.lr=3e-3",
        "model.lm_lr=1e-3",
        "data.batch_size=8",
        "logger=csv",
        *extra,
    ]


def test_run_folder_records_the_mixture_and_the_log_names_each_source(sources, tmp_path, caplog):
    a, b, val = sources
    cfg = compose_config(_run_overrides(a, b, val, tmp_path / "run", "trainer.max_epochs=1"))
    with caplog.at_level(logging.INFO):
        out = train(cfg)
    rec = json.loads((out / MIXTURE_NAME).read_text())
    assert rec["seed"] == 0 and rec["pairs_per_epoch"] == 30
    assert [
        (s["path"], s["weight"], s["max_pairs"], s["pairs_read"], s["pairs_kept"], s["pairs_per_epoch"])
        for s in rec["sources"]
    ] == [(str(a), 0.5, None, 30, 30, 15), (str(b), 1.5, 10, 12, 10, 15)]
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["train_pairs"] == 40 and summary["train_pairs_per_epoch"] == 30
    assert summary["global_steps"] == 4  # 30 pairs per epoch in batches of 8
    saved = (out / "omnireward.yaml").read_text()
    assert "max_pairs: 10" in saved and "weight: 1.5" in saved  # the resolved config keeps the mixture
    line = next(r.getMessage() for r in caplog.records if "training pairs per epoch" in r.getMessage())
    assert "a.jsonl 15 (30 kept × weight 0.5)" in line and "b.jsonl 15 (10 kept × weight 1.5)" in line


def test_a_resumed_mixture_run_matches_the_uninterrupted_one(sources, tmp_path):
    a, b, val = sources
    full = train(compose_config(_run_overrides(a, b, val, tmp_path / "full", "trainer.max_epochs=2")))
    part_cfg = _run_overrides(a, b, val, tmp_path / "part", "trainer.max_epochs=2")
    part = train(compose_config(part_cfg), callbacks=[StopAfterFirstEpoch()])
    # The resumed run writes into the same folder: keep the first epoch's weights now.
    first = torch.load(part / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    resumed = train(compose_config(part_cfg + [f"ckpt_path={part / 'checkpoints' / 'last.ckpt'}"]))
    full_last = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    res_last = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for k in full_last:
        assert torch.allclose(full_last[k], res_last[k], atol=1e-6), k
    # Not trivially equal: the second epoch moved the weights.
    assert first.keys() == full_last.keys()
    assert any(not torch.allclose(first[k], v) for k, v in full_last.items())


def test_cli_refuses_a_bad_mixture_entry_in_one_line(sources, tmp_path):
    from test_cli import run

    a, _, _ = sources
    r = run(
        "train",
        f"data.train=[{{path:'{a}'}},{{path:'{a}',weight:-1}}]",
        "backbone=tiny",
        f"output_dir={tmp_path / 'run'}",
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.train[1].weight: weight must be a number > 0, got -1" in lines[0], r.stderr


def test_the_datamodule_checks_the_data_against_the_models_needs(tmp_path):
    """The module hands one DataNeeds to the datamodule; `setup` reads with its `trains_on` and
    refuses, naming file and line, a record without the margin or with a dimension it lacks."""
    from omnireward.errors import DataFormatError

    rows = [{**r, "margin": 1.0} for r in helpful_vs_rude(6, seed=4)]
    del rows[3]["margin"]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    plain = PreferenceDataModule(train=str(path))
    plain.needs = DataNeeds(collate=list)
    plain.setup()
    assert len(plain.splits["train"]) == 6
    needy = PreferenceDataModule(train=str(path))
    needy.needs = DataNeeds(collate=list, margins="the loss uses each record's margin")
    with pytest.raises(DataFormatError, match=r"m\.jsonl:4: margin: missing margin: the loss uses"):
        needy.setup()
    picky = PreferenceDataModule(train=str(path))
    picky.needs = DataNeeds(collate=list, trains_on=lambda r: r.id != rows[0]["id"])
    picky.setup()
    assert [p.id for p in picky.splits["train"]] == [r["id"] for r in rows[1:]]
    dims = [{**r, "preference": {"overall": r["preference"], "safety": r["preference"]}} for r in rows[:2]]
    dpath = write_jsonl(tmp_path / "d.jsonl", dims)
    strict = PreferenceDataModule(train=str(dpath))
    strict.needs = DataNeeds(collate=list, dimensions=("helpfulness",))
    with pytest.raises(DataFormatError, match=r"d\.jsonl:1: preference\.safety: dimension 'safety'"):
        strict.setup()
    unset = PreferenceDataModule(train=str(path))
    unset.setup()
    with pytest.raises(RuntimeError, match="DataNeeds"):
        unset.train_dataloader()


def test_every_module_declares_what_it_needs_from_the_data():
    from omnireward.config import compose_config
    from omnireward.train import build_module

    for model, loss, margins in (("bt", "bt", None), ("bt", "bt_margin", "margin"), ("joint", "bt", None)):
        module = build_module(compose_config([f"model={model}", "backbone=tiny", f"loss={loss}"]))
        needs = module.data_needs()
        assert needs.collate == module.collate and needs.trains_on == module.trains_on
        assert (needs.margins is None) if margins is None else (margins in needs.margins)
    judge = build_module(compose_config(["model=r1", "backbone=tiny"]))
    assert judge.data_needs().collate == judge.collate
