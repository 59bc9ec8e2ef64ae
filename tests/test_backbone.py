"""The modular backbone: prompt building, media splicing, last-token reading, padding invariance."""

import pytest
import torch
from PIL import Image

from omnireward.backbones.build import build_modular
from omnireward.data.records import Media, Pair, Response
from omnireward.reward_model import RewardModel


@pytest.fixture(scope="module")
def image_model():
    torch.manual_seed(0)
    bb = build_modular(lm="tiny", encoders=["image"], pretrained_encoders=False, feature_cache=False)
    return RewardModel.with_bt_head(bb, dropout=0.0).eval()


def _unpacked(model, pairs):
    """One row per response (no prefix sharing), so each row's reward position is `last_index`."""
    return model.collate(pairs + pairs, [p.response1 for p in pairs] + [p.response2 for p in pairs])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("img")
    paths = []
    for name in ("astronaut", "chelsea", "coffee"):
        p = d / f"{name}.png"
        Image.fromarray(getattr(data, name)()).resize((96, 96)).save(p)
        paths.append(str(p))
    return paths


def _pairs(images, n=8):
    out = []
    for i in range(n):
        a, b = images[i % 3], images[(i + 1) % 3]
        out.append(
            Pair(
                id=str(i),
                task="text_to_image",
                prompt="a photo " + "very " * i,
                response1=Response("", [Media("image", a)]),
                response2=Response("caption " * (i % 3), [Media("image", b)]),
                criteria="prefer sharp photos" if i % 2 else None,
                preference="response1",
            )
        )
    return out


def test_rewards_do_not_depend_on_batch_size_or_padding(image_model, images):
    pairs = _pairs(images)
    with torch.no_grad():
        together = image_model(image_model.collate_pairs(pairs))
        alone = torch.cat([image_model(image_model.collate_pairs([p])) for p in pairs])
        from omnireward.prompts import reward_conversation

        convs = [reward_conversation(p, p.response1) for p in pairs] + [
            reward_conversation(p, p.response2) for p in pairs
        ]
        left = image_model.head(
            image_model.backbone.reward_hidden(image_model.backbone.processor(convs, padding_side="left"))
        )
    order = torch.cat([alone.view(-1, 2)[:, 0], alone.view(-1, 2)[:, 1]])
    assert (together - order).abs().max().item() < 1e-4
    assert (together - left).abs().max().item() < 1e-4
    assert together.std() > 0  # different inputs give different rewards


def test_media_are_spliced_where_the_placeholders_are(image_model, images):
    bb = image_model.backbone
    p = _pairs(images, 1)[0]
    batch = _unpacked(image_model, [p])
    spec = batch.extra["media"]["image"]
    n_tok = bb.encoders["image"].n_tokens
    assert spec["x"].shape[0] == 2  # one image per response
    ids = batch.tensors["input_ids"][0].tolist()
    start = spec["pos"][0, 1].item()
    text = bb.tokenizer.decode(ids[:start])
    assert text.rstrip().endswith("<|im_start|>assistant")  # media come first in the assistant turn
    # The reward is read at the last real token.
    assert batch.tensors["last_index"][0] == batch.tensors["attention_mask"][0].sum() - 1
    # Changing the image changes the reward; changing nothing does not.
    q = Pair(
        id="q",
        task=p.task,
        prompt=p.prompt,
        response1=Response("", [Media("image", images[2])]),
        response2=p.response2,
        preference="response1",
    )
    with torch.no_grad():
        r_p = image_model(image_model.collate_pairs([p]))
        r_q = image_model(image_model.collate_pairs([q]))
        r_p2 = image_model(image_model.collate_pairs([p]))
    assert r_p[0] != r_q[0] and r_p[1] == pytest.approx(r_q[1].item(), abs=1e-5)
    assert torch.equal(r_p, r_p2)
    assert n_tok == 5


def test_criteria_go_in_the_system_turn(image_model, images):
    bb = image_model.backbone
    from omnireward.prompts import reward_conversation

    p = _pairs(images, 2)[1]
    text, media = bb.processor.render(reward_conversation(p, p.response1))
    assert text.startswith("<|im_start|>system\nprefer sharp photos<|im_end|>")
    assert len(media) == 1


def test_lm_target_labels_cover_only_the_answer(image_model):
    from omnireward.backbones.base import conversation

    bb = image_model.backbone
    conv = conversation("judge", ["Which is better?"], ["Response A is better. [[A]]"])
    batch = bb.processor([conv], lm_target=True)
    labels = batch.tensors["labels"][0]
    target = bb.tokenizer.decode(labels[labels != -100])
    assert target.startswith("Response A is better. [[A]]")
    assert "Which is better" not in target


def test_long_sequences_are_cut_in_the_middle(image_model):
    from omnireward.backbones.base import conversation

    bb = image_model.backbone
    old = bb.processor.max_length
    bb.processor.max_length = 64
    try:
        conv = conversation("keep this criterion", ["word " * 200], ["final answer"])
        batch = bb.processor([conv])
        ids = batch.tensors["input_ids"][0]
        assert batch.tensors["attention_mask"][0].sum() == 64
        text = bb.tokenizer.decode(ids)
        assert "keep this criterion" in text and text.rstrip().endswith("final answer<|im_end|>")
    finally:
        bb.processor.max_length = old


def test_missing_encoder_is_a_clear_error(images):
    from omnireward.errors import ModelError

    bb = build_modular(lm="tiny", encoders=[], pretrained_encoders=False, feature_cache=False)
    model = RewardModel.with_bt_head(bb)
    with pytest.raises(ModelError, match="no image encoder"):
        model.collate_pairs(_pairs(images, 1))


def test_label_token_follows_the_image_tokens(images):
    """With pretrained encoders, each image gets one more token: its top ImageNet classes as LM words."""
    torch.manual_seed(0)
    bb = build_modular(lm="tiny", encoders=["image"], pretrained_encoders=True, feature_cache=False)
    assert bb.processor.span("image") == bb.encoders["image"].n_tokens + 1
    model = RewardModel.with_bt_head(bb, dropout=0.0).eval()
    batch = _unpacked(model, _pairs(images, 1))
    spec = batch.extra["media"]["image"]
    with torch.no_grad():
        embeds = bb._embed(batch)
        probs = bb.encoders["image"].label_probs(spec["x"])
    b, t = spec["pos"][0].tolist()
    n = bb.encoders["image"].n_tokens
    table = bb.label_words["image"].table
    assert torch.allclose(embeds[b, t + n], probs[0] @ table, atol=1e-6)
    # a row of the table is the mean LM embedding of the class name's tokens
    names = bb.encoders["image"].label_names
    i = names.index("tabby, tabby cat")
    ids = bb.tokenizer(" tabby, tabby cat", add_special_tokens=False)["input_ids"]
    assert torch.allclose(table[i], bb.lm.get_input_embeddings().weight[ids].mean(0), atol=1e-6)
    # the token after the label is text again, and the last real token is still where the reward is read
    assert batch.tensors["last_index"][0] == batch.tensors["attention_mask"][0].sum() - 1
    off = build_modular(
        lm="tiny", encoders=["image"], pretrained_encoders=True, feature_cache=False, label_tokens=False
    )
    assert off.processor.span("image") == n and not len(off.label_words)


def test_trainable_encoder_runs_once_for_tokens_and_label(images):
    """Feature tokens and the label token come from one pass of a trainable image net."""
    torch.manual_seed(0)
    bb = build_modular(
        lm="tiny", encoders=["image"], pretrained_encoders=True, train_encoders=True, feature_cache=False
    )
    model = RewardModel.with_bt_head(bb, dropout=0.0).eval()
    batch = model.collate_pairs(_pairs(images, 1))
    net = bb.encoders["image"].net
    calls = []
    original = net.extract_features
    net.extract_features = lambda x: calls.append(len(x)) or original(x)
    with torch.no_grad():
        embeds = bb._embed(batch)
    assert calls == [2]  # both responses' images, in one batched pass
    spec = batch.extra["media"]["image"]
    b, t = spec["pos"][0].tolist()
    n = bb.encoders["image"].n_tokens
    with torch.no_grad():
        probs = bb.encoders["image"].label_probs(spec["x"])
    assert torch.allclose(embeds[b, t + n], probs[0] @ bb.label_words["image"].table, atol=1e-5)
