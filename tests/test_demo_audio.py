"""The audio demo's held-out split hears only voices and sentences its train split never has."""

import json
import re
from collections import Counter

import pytest

from omnireward.data.demo import build_demo
from omnireward.data.demo.audio import SOURCES, bundled_clips


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = build_demo("audio", tmp_path_factory.mktemp("audio_demo"), n_pairs=60, seed=3)
    return {
        s: [json.loads(line) for line in (root / f"{s}.jsonl").read_text().splitlines()]
        for s in ("train", "val", "test")
    }


def _by_name():
    return {c.name: c for c in bundled_clips()}


def test_bundled_sources_are_split_by_voice_and_sentence():
    clips = bundled_clips()
    train = [c for c in clips if c.split == "train"]
    test = [c for c in clips if c.split == "test"]
    assert {c.split for c in clips} == {"train", "test"} and len(test) >= 40
    assert not {c.voice for c in train} & {c.voice for c in test}
    assert not {c.sentence for c in train} & {c.sentence for c in test}
    for part in (train, test):  # every voice speaks every sentence of its part; flips have their variants
        voices, sentences = {c.voice for c in part}, {c.sentence for c in part}
        assert len(voices) >= 2
        assert {(c.voice, c.sentence) for c in part if c.variant == "normal"} == {
            (v, s) for v in voices for s in sentences
        }
        assert {c.variant for c in part} == {"normal", "fast", "slow", "high", "low"}


def test_each_split_draws_from_its_own_sources(demo):
    clips = _by_name()
    for split, pairs in demo.items():
        used = [clips[name] for p in pairs for name in p["meta"]["clips"]]
        assert used and {c.split for c in used} == {SOURCES[split]}
        assert {p["meta"]["voice"] for p in pairs} <= {c.voice for c in used}
        sentences = {c.sentence for c in clips.values() if c.split == SOURCES[split]}
        for p in pairs:  # every sentence a prompt or a transcript quotes belongs to the split's sources
            texts = [p["prompt"]] + [r["text"] for r in (p["response1"], p["response2"]) if "text" in r]
            quoted = [q for t in texts for q in re.findall(r'"([^"]+)"', t)]
            assert set(quoted) <= sentences, (split, quoted)
    assert SOURCES == {"train": "train", "val": "train", "test": "test"}


def test_test_split_holds_every_rule_and_both_test_voices(demo):
    test = demo["test"]
    assert set(Counter(p["meta"]["rule"] for p in test)) == {"content", "noise", "transcript", "criteria_flip"}
    assert len({p["meta"]["voice"] for p in test}) == 2
