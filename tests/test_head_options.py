"""What a head reads: `head.layer`, `head.pooling=last|mean|attention`, and the two-layer `head=mlp`,
on the embedded (modular) backbone and the HF families (a text LM, Qwen2.5-VL), tiny and random.

Each option trains a few steps, is saved into a model folder and reloads to the same rewards; the
defaults read exactly what the bt head always read; attention pooling sees the response's tokens
and nothing else; `head.layer` is the backbone's own hidden layer; bad values stop in one line."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from omnireward.config import compose_config
from omnireward.data.records import record_from_dict, responses_of
from omnireward.errors import ConfigError, ModelError
from omnireward.heads.mlp import MLPHead
from omnireward.heads.pooling import reading
from omnireward.prompts import reward_conversation
from omnireward.reward_model import RewardModel
from omnireward.train import build_module

FAMILIES = ["embedded", "hf_text", "qwen2_5_vl"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """family -> the overrides that build it (tiny checkpoints saved on first use), and an image."""
    tiny_hf = pytest.importorskip("_tiny_hf")
    root = tmp_path_factory.mktemp("head_options")
    image = root / "red.png"
    Image.new("RGB", (56, 56), (200, 30, 30)).save(image)
    other = root / "blue.png"
    Image.new("RGB", (56, 56), (20, 40, 220)).save(other)
    built: dict[str, list[str]] = {}

    def get(family: str) -> list[str]:
        if family not in built:
            if family == "embedded":
                built[family] = ["backbone=tiny", "backbone.feature_cache=false"]
            else:
                save = tiny_hf.save_text_lm if family == "hf_text" else tiny_hf.save_qwen2_5_vl
                folder = save(root / family)
                built[family] = ["backbone=hf", f"backbone.name_or_path={folder}", "backbone.dtype=float32"]
        return built[family]

    get.images = (str(image), str(other))
    return get


def records(family: str, images) -> list:
    """Pairs of different prompt and answer lengths; for Qwen2.5-VL, images in prompts and answers."""
    rows = [
        {"prompt": "Name a fruit.", "response1": "An apple.", "response2": "A stone.", "preference": "response1"},
        {
            "prompt": "Say hi to everyone in the room, please, and be kind about it.",
            "response1": "hi",
            "response2": "Hello there, friends! It is good to see every one of you here today.",
            "preference": "response2",
        },
    ]
    if family == "qwen2_5_vl":
        red, blue = images
        rows += [
            {
                "prompt": "Which colour is it?",
                "prompt_media": [{"type": "image", "path": red}],
                "response1": "red",
                "response2": "It is blue, all of it.",
                "preference": "response1",
            },
            {
                "prompt": "a red square",
                "response1": {"media": [{"type": "image", "path": red}], "text": "here"},
                "response2": {"media": [{"type": "image", "path": blue}]},
                "preference": "response1",
            },
        ]
    return [record_from_dict(r) for r in rows]


def build(sources, family: str, *options: str, seed: int = 0):
    cfg = compose_config([*sources(family), "head.dropout=0", *options])  # a first call saves the checkpoint
    torch.manual_seed(seed)
    return build_module(cfg), cfg


def one_row_per_response(model, recs):
    """An unpacked batch with one response per row, and the conversations of its rows."""
    owners = [r for r in recs for _ in responses_of(r)]
    responses = [x for r in recs for x in responses_of(r)]
    return model.collate(owners, responses), [reward_conversation(r, x) for r, x in zip(owners, responses)]


def prompt_lengths(model, convs) -> list[int]:
    """Each conversation's prompt up to the assistant header, tokenised on its own: where its answer starts."""
    proc = model.backbone.processor
    return [int(proc([c[:-1]], add_generation_prompt=True).tensors["attention_mask"].sum()) for c in convs]


# ---- the defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["embedded", "hf_text"])
def test_the_default_head_reads_exactly_what_the_bt_head_always_read(sources, family):
    """Same seed, default head: the rewards are bit for bit those of the plain path (the bt head's
    linear on `reward_hidden`, the last layer at the last token), packed or not, and equal those of
    the bt head with its reading spelled out; the head's weights are what they always were."""
    default, _ = build(sources, family)
    explicit, _ = build(sources, family, "head=bt", "head.layer=-1", "head.pooling=last")
    recs = records(family, sources.images)
    assert set(default.model.head.state_dict()) == {"score.weight"}
    assert torch.equal(default.model.head.score.weight, explicit.model.head.score.weight)
    for sharing in (True, False):
        for m in (default.model, explicit.model):
            m.prefix_sharing = sharing
            m.eval()
        with torch.no_grad():
            batch = default.model.collate_records(recs)
            assert "response_mask" not in batch.tensors
            plain = default.model.head.score(default.model.backbone.reward_hidden(batch)).squeeze(-1).float()
            assert torch.equal(default.model(batch), plain)
            assert torch.equal(explicit.model(batch), plain)


# ---- each option: trains, saves, reloads ----------------------------------------------------------

OPTIONS = {
    "mean": ["head.pooling=mean"],
    "attention": ["head.pooling=attention"],
    "layer": ["head.layer=-2"],
    "mlp": ["head=mlp", "head.hidden_size=16", "head.dropout=0.2"],
    "mlp_attention_layer1": ["head=mlp", "head.hidden_size=8", "head.pooling=attention", "head.layer=1"],
}
CASES = [(f, o) for f in ("embedded", "hf_text") for o in OPTIONS] + [
    ("qwen2_5_vl", "attention"),
    ("qwen2_5_vl", "mlp_attention_layer1"),
]


@pytest.mark.parametrize("family, option", CASES)
def test_each_option_trains_saves_and_reloads_to_the_same_rewards(sources, tmp_path, family, option):
    module, cfg = build(sources, family, *OPTIONS[option], "model.lr=1e-2")
    model = module.model
    head0 = {k: v.clone() for k, v in model.head.state_dict().items()}
    recs = records(family, sources.images)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        batch = module.collate(recs)
        loss = module.objective(model.outputs(batch["inputs"]), batch)
        assert math.isfinite(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not torch.equal(v, model.head.state_dict()[k]) for k, v in head0.items()), "the head did not train"
    if reading(model.head)[1] == "attention":
        assert model.head.pool.query.abs().sum() > 0  # the query learned from its zero start
    model.eval()
    with torch.no_grad():
        before = {s: _margins(model, recs, s) for s in (True, False)}
    out = model.save_pretrained(tmp_path / "folder", cfg)
    loaded, saved_cfg = RewardModel.from_pretrained(out)
    assert type(loaded.head) is type(model.head) and reading(loaded.head) == reading(model.head)
    assert saved_cfg.head.pooling == cfg.head.pooling and saved_cfg.head.layer == cfg.head.layer
    with torch.no_grad():
        for sharing, margins in before.items():
            assert (_margins(loaded, recs, sharing) - margins).abs().max().item() < 1e-5
    if family == "qwen2_5_vl":
        return
    # Packed (prompt once) and unpacked batches read the same tokens.
    assert (before[True] - before[False]).abs().max().item() < 1e-5
    from omnireward.export import export

    # A transformers sequence classifier holds a linear on the last layer's last token only.
    with pytest.raises(ModelError) as e:
        export(out, tmp_path / "exported")
    assert "\n" not in str(e.value)
    assert ("MLPHead" if option.startswith("mlp") else "reads head.layer=") in str(e.value)


def _margins(model, recs, sharing: bool) -> torch.Tensor:
    model.prefix_sharing = sharing
    r = model(model.collate_records(recs))
    n = len(recs)
    return r[:n] - r[n:]  # answer-major: every response1, then every response2


def test_mlp_head_is_two_layers_of_the_configured_width():
    head = MLPHead(24, hidden_size=7, dropout=0.3, activation="relu")
    lin1, act, drop, lin2 = head.net
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (24, 7, 1)
    assert isinstance(act, torch.nn.ReLU) and drop.p == 0.3 and lin2.bias is None
    head.eval()
    h = torch.randn(5, 24)
    assert torch.allclose(head(h), lin2(torch.relu(lin1(h))).squeeze(-1))
    assert reading(head) == (-1, "last")


# ---- attention pooling reads the response's tokens only -------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_pooling_reads_the_responses_tokens_and_nothing_else(sources, family):
    """The pooled reward equals attention over the positions from the answer's first token (found
    by tokenising the prompt alone) to its last: prompt tokens (a prompt image included) and
    padding never enter, and a response scores the same alone as beside longer ones."""
    module, _ = build(sources, family, "head.pooling=attention")
    model = module.model.eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.pool.query, std=3.0)  # a query that prefers some tokens strongly
        recs = records(family, sources.images)
        batch, convs = one_row_per_response(model, recs)
        rewards = model(batch)
        states = model.backbone.layer_states(batch, -1).float()
        last = batch.tensors["last_index"]
        starts = prompt_lengths(model, convs)
        q, scale = model.head.pool.query, states.shape[-1] ** -0.5

        def attend(span):
            w = torch.softmax(span @ q * scale, dim=0)
            return model.head(((w[:, None]) * span).sum(0, keepdim=True))[0]

        expected = torch.stack([attend(states[i, s : last[i] + 1]) for i, s in enumerate(starts)])
        assert (rewards - expected).abs().max().item() < 1e-5
        # The check can tell: with the prompt's tokens attended too, the rewards would differ.
        with_prompt = torch.stack([attend(states[i, : last[i] + 1]) for i in range(len(starts))])
        assert (rewards - with_prompt).abs().max().item() > 1e-3
        # The mask is exactly those positions, padding and prompt excluded.
        mask = batch.tensors["response_mask"]
        for i, s in enumerate(starts):
            assert mask[i].nonzero().squeeze(-1).tolist() == list(range(s, int(last[i]) + 1))
        # Padding: each response alone gives the reward it got in the padded batch.
        alone = torch.cat([model(model.collate([o], [x])) for o, x in _owners(recs)])
        assert (alone - rewards).abs().max().item() < 1e-5
        # Prefix sharing (text backbones): the packed responses read their own segment only.
        if family != "qwen2_5_vl":
            model.prefix_sharing = True
            packed = model.collate_records(recs)
            assert "segment_ids" in packed.tensors
            n = len(recs)
            order = torch.tensor([2 * i for i in range(n)] + [2 * i + 1 for i in range(n)])
            assert (model(packed) - rewards[order]).abs().max().item() < 1e-5


def _owners(recs):
    return [(r, x) for r in recs for x in responses_of(r)]


@pytest.mark.parametrize("family", ["embedded", "qwen2_5_vl"])
def test_mean_pooling_is_the_mean_over_the_answers_positions(sources, family):
    module, _ = build(sources, family, "head.pooling=mean", "model.prefix_sharing=false")
    model = module.model.eval()
    with torch.no_grad():
        batch, convs = one_row_per_response(model, records(family, sources.images))
        states = model.backbone.layer_states(batch, -1).float()
        last = batch.tensors["last_index"]
        means = torch.stack([states[i, s : last[i] + 1].mean(0) for i, s in enumerate(prompt_lengths(model, convs))])
        assert (model(batch) - model.head(means)).abs().max().item() < 1e-5


# ---- head.layer reads the backbone's own hidden layer ---------------------------------------------


def rms_normalised(h: torch.Tensor) -> torch.Tensor:
    return h / h.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_reads_the_backbones_own_hidden_layer(sources, family):
    """The reward with `head.layer=k` is the head on transformers' `hidden_states[k]` at the last
    token (RMS-normalised below the top), computed here by the language model itself (not through
    the backbone's code). Every tiny model has 2 decoder layers: layer 2 is the top, the final
    normed state, exactly what -1 reads."""
    recs = records(family, sources.images)
    seen = []
    for layer in (0, 1, -2, 2, -1):
        module, _ = build(sources, family, f"head.layer={layer}", "model.prefix_sharing=false")
        model = module.model.eval()
        with torch.no_grad():
            batch, _ = one_row_per_response(model, recs)
            t = batch.tensors
            lm = model.backbone.language_model()
            if family == "embedded":  # text only: the LM's own embeddings are the input
                out = lm(input_ids=t["input_ids"], attention_mask=t["attention_mask"], output_hidden_states=True)
            else:
                inputs = {k: v for k, v in t.items() if k != "last_index"}
                out = lm(**inputs, output_hidden_states=True)
            assert len(out.hidden_states) == 3
            h = out.hidden_states[layer][torch.arange(len(t["last_index"])), t["last_index"]]
            expected = model.head(h if layer in (2, -1) else rms_normalised(h))
            rewards = model(batch)
            assert (rewards - expected).abs().max().item() < 1e-5, layer
            seen.append(rewards)
    assert not torch.allclose(seen[0], seen[-1]) and not torch.allclose(seen[2], seen[-1])
    assert (seen[3] - seen[-1]).abs().max().item() < 1e-6  # layer 2 = -1: the top, not normalised again


# ---- bad values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, match",
    [
        (["head.layer=3"], r"head\.layer: 3 is out of range: this backbone has 2 decoder layers"),
        (["head.layer=-4"], r"head\.layer: -4 is out of range"),
        (["head.layer=top"], r"head\.layer: must be an integer"),
        (["head.pooling=max"], r"head\.pooling: must be one of last, mean, attention, got 'max'"),
        (["head=mlp", "head.pooling=cls"], r"head\.pooling: must be one of"),
        (["head=mlp", "head.hidden_size=0"], r"head\.hidden_size: must be a width >= 1"),
        (["head=mlp", "head.activation=swish"], r"head\.activation: must be one of gelu"),
        (["head=gaussian", "head.layer=5"], r"head\.layer: 5 is out of range"),
        (["head=multi", "head.pooling=sum"], r"head\.pooling: must be one of"),
    ],
)
def test_bad_values_are_one_line_config_errors(options, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_module(compose_config(["backbone=tiny", "backbone.feature_cache=false", *options]))
    assert "\n" not in str(e.value)


def test_the_first_and_last_layers_in_range_are_accepted():
    for layer in (-3, 2):  # 2 decoder layers: hidden_states[-3] the embeddings, [2] the final state
        module = build_module(compose_config(["backbone=tiny", "backbone.feature_cache=false", f"head.layer={layer}"]))
        assert reading(module.model.head) == (layer, "last")


def test_train_command_learns_with_an_mlp_head_attending_over_a_lower_layer(tmp_path):
    """The whole `train` path (Lightning, best-epoch checkpoint, the folder) with the options
    together, then `score` from the folder: it learns the helpful-vs-rude rule."""
    from conftest import helpful_vs_rude, write_jsonl

    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    tr = write_jsonl(tmp_path / "train.jsonl", helpful_vs_rude(24, seed=1))
    va = write_jsonl(tmp_path / "val.jsonl", helpful_vs_rude(16, seed=2, start=100))
    options = ["head=mlp", "head.hidden_size=32", "head.pooling=attention", "head.layer=-2"]
    out = train(
        compose_config(
            [
                "backbone=tiny",
                "backbone.feature_cache=false",
                f"data.train={tr}",
                f"data.val={va}",
                f"output_dir={tmp_path / 'run'}",
                "trainer.accelerator=cpu",
                "logger.tensorboard=false",
                "trainer.max_epochs=2",
                "model.lr=3e-3",
                "data.batch_size=8",
                *options,
            ]
        )
    )
    model, cfg = RewardModel.from_pretrained(out)
    assert type(model.head) is MLPHead and reading(model.head) == (-2, "attention")
    assert model.head.pool.query.detach().abs().sum() > 0
    summary = score_file(va, out, tmp_path / "scores.jsonl")
    assert summary["accuracy_without_ties"] >= 0.9, summary
