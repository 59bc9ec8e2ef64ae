"""Spoken content: Whisper's decoder transcribes clips, and the words reach the LM after the clip's tokens."""

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from omnireward.backbones.base import conversation
from omnireward.backbones.build import build_modular
from omnireward.backbones.features import FeatureCache
from omnireward.backbones.modular_processor import TRANSCRIPT
from omnireward.data.demo.audio import bundled_clips
from omnireward.data.records import Media
from omnireward.encoders import build_encoder, transcript
from omnireward.errors import ConfigError

SPEECH = Path(__file__).resolve().parents[1] / "omnireward" / "assets" / "speech"


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def word_error_rate(ref: str, hyp: str) -> float:
    """Word-level edit distance over the reference length (case and punctuation ignored)."""
    a, b = _words(ref), _words(hyp)
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diag, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (x != y))
    return row[-1] / len(a)


def test_word_error_rate_counts_edits():
    assert word_error_rate("the cat is sleeping", " The Cat is sleeping.") == 0
    assert word_error_rate("the cat is sleeping", "The cut is sleeping") == 0.25
    assert word_error_rate("open the window please", "open window") == 0.5


def test_transcripts_of_bundled_clips_match_their_sentences():
    """Two clips of each voice, train and test parts: each greedy transcript is nearer its own sentence
    than any other sentence of its part, and the word error rate stays low.

    Whisper tiny.en hears espeak-ng's voices imperfectly ("The Cut is Sleeping."): measured WER 0.30
    on these eight clips, 0.375 on 24 (six per voice); one of four per clip above 0.5.
    """
    clips = [c for c in bundled_clips() if c.variant == "normal"]
    picked = [c for v in sorted({c.voice for c in clips}) for c in [c for c in clips if c.voice == v][:2]]
    assert len(picked) == 8
    heard = [transcript.transcribe(c.wav) for c in picked]
    rates = [word_error_rate(c.sentence, h) for c, h in zip(picked, heard)]
    assert sum(rates) / len(rates) <= 0.4, list(zip(heard, rates))
    nearest_own = [
        word_error_rate(c.sentence, h)
        < min(word_error_rate(o, h) for o in {x.sentence for x in clips if x.split == c.split} - {c.sentence})
        for c, h in zip(picked, heard)
    ]
    assert sum(nearest_own) >= 7, list(zip(heard, nearest_own))  # measured 7 (rpf1's "I can't even need smart water")


def test_transcript_needs_the_pretrained_whisper():
    with pytest.raises(ConfigError, match="pretrained Whisper"):
        build_encoder("audio", pretrained=False, transcript=True)
    assert not build_encoder("audio", pretrained=False).transcribes


def test_transcript_tokens_follow_the_audio_span_and_are_cached(tmp_path):
    clip = SPEECH / "en_s01_normal.flac"  # "open the window please"
    conv = conversation(None, ['A voice saying "open the window please".'], [Media("audio", str(clip))])
    batches = {}
    for on in (True, False):
        bb = build_modular(
            lm="tiny", encoders=["audio"], encoder_options={"audio": {"transcript": on}}, feature_cache=False
        )
        bb.processor.feature_cache = FeatureCache(tmp_path / "features")
        batches[on] = bb.processor([conv])
        pos = int(batches[on].extra["media"]["audio"]["pos"][0, 1])
        after = bb.tokenizer.decode(batches[on].tensors["input_ids"][0, pos + bb.processor.span("audio") :])
        if on:
            assert after.startswith(TRANSCRIPT.format("")[:-1])
            assert "open the window" in after.lower(), after
        else:
            assert "Transcript" not in after
    n_on, n_off = (int(batches[k].tensors["attention_mask"].sum()) for k in (True, False))
    assert n_on - n_off >= 6  # the words of a four-word sentence, in the LM's tokens

    # Second use: from memory; a new cache on the same folder reads it from disk, no decoding.
    cache = FeatureCache(tmp_path / "texts")
    enc = build_encoder("audio", transcript=True)
    first = cache.text(enc, clip)
    assert (cache.hits, cache.misses) == (0, 1)
    assert cache.text(enc, clip) == first and (cache.hits, cache.misses) == (1, 1)
    assert len(list((tmp_path / "texts").glob("t*.txt"))) == 1

    def no_decoding(*_):
        raise AssertionError("transcribed again")

    mp = pytest.MonkeyPatch()
    mp.setattr(transcript, "transcribe", no_decoding)
    try:
        again = FeatureCache(tmp_path / "texts")
        assert again.text(enc, clip) == first and again.hits == 1
    finally:
        mp.undo()


def _content_pairs(part: str, rows_per_clip: int, shift: int = 3) -> list[dict]:
    """The demo's spoken-content rule on bundled clips: the clip saying the prompt's sentence wins."""
    clips = [c for c in bundled_clips() if c.split == part and c.variant == "normal"]
    by_voice = defaultdict(list)
    for c in clips:
        by_voice[c.voice].append(c)
    rows = []
    for _voice, own in sorted(by_voice.items()):
        for i, good in enumerate(own):
            for k in range(1, rows_per_clip + 1):
                bad = own[(i + shift * k) % len(own)]
                first = len(rows) % 2 == 0
                a, b = (good, bad) if first else (bad, good)
                rows.append(
                    {
                        "id": f"{part}-{len(rows)}",
                        "prompt": f'A voice saying "{good.sentence}".',
                        "response1": {"media": [{"type": "audio", "path": str(SPEECH / a.name)}]},
                        "response2": {"media": [{"type": "audio", "path": str(SPEECH / b.name)}]},
                        "preference": "response1" if first else "response2",
                    }
                )
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("with_transcript", [True, False])
def test_embedded_lm_learns_spoken_content_only_from_transcripts(tmp_path, with_transcript):
    """Which clip says the prompt's sentence: trained on the train voices and sentences, tested on
    unseen voices saying unseen sentences, with the embedded default (SmolLM2 + frozen Whisper).

    Matching a sentence the model never saw to the words of a clip needs a pretrained LM: a tiny
    random LM (hidden 128, trained from scratch on these 192 pairs) stayed at 0.56 validation
    accuracy with transcripts, so this test uses the embedded default's LM and its top layers.
    """
    from omnireward.config import compose_config
    from omnireward.scoring.bt import score_file
    from omnireward.train import train

    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    train_file = write("train.jsonl", _content_pairs("train", 4))
    val_file = write("val.jsonl", _content_pairs("train", 1, shift=7))  # new pairings of seen clips
    test_file = write("test.jsonl", _content_pairs("test", 2))
    out = train(
        compose_config(
            [
                "modality=audio",
                f"backbone.encoder_options.audio.transcript={str(with_transcript).lower()}",
                f"data.train={train_file}",
                f"data.val={val_file}",
                f"output_dir={tmp_path / 'run'}",
                "trainer.max_epochs=2",
                "data.batch_size=8",
                "data.allow_outside_root=true",
            ]
        )
    )  # the bundled clips live in the package, not beside the data
    summary = score_file(test_file, out, tmp_path / "scores.jsonl", allow_outside_root=True)
    assert summary["n"] == 48
    if with_transcript:
        assert summary["accuracy_without_ties"] >= 0.8, summary
    else:
        assert summary["accuracy_without_ties"] <= 0.7, summary


def test_clips_without_speech_get_no_words_and_speech_keeps_them():
    """A tone, a hum, noise and silence get "" (greedy decoding wrote sound captions such as
    "(whistle)" or "(water splashing)", and "you" for silence), speech keeps its words."""
    import numpy as np

    rate = 16000
    t = np.arange(2 * rate) / rate
    rng = np.random.default_rng(0)
    silent = {
        "tone": (0.5 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32),
        "hum": (0.5 * np.sin(2 * np.pi * 120 * t)).astype(np.float32),
        "noise": rng.normal(0, 0.1, 2 * rate).astype(np.float32),
        "silence": np.zeros(2 * rate, np.float32),
    }
    for name, wave in silent.items():
        words, no_speech, _ = transcript.decode(wave)
        assert not transcript.is_speech(words, no_speech), (name, words, no_speech)
        assert transcript.transcribe(wave) == "", name
    for clip in [c for c in bundled_clips() if c.variant == "normal"][:2]:
        words, no_speech, _ = transcript.decode(clip.wav)
        assert no_speech < transcript.NO_SPEECH_THRESHOLD and transcript.transcribe(clip.wav) == words != ""


def test_a_clip_without_speech_adds_no_transcript_text(tmp_path):
    import numpy as np
    import soundfile as sf

    tone = tmp_path / "tone.wav"
    sf.write(tone, (0.5 * np.sin(2 * np.pi * 2000 * np.arange(16000) / 16000)).astype(np.float32), 16000)
    conv = conversation(None, ["a high-pitched whistle"], [Media("audio", str(tone))])
    lengths = {}
    for on in (True, False):
        bb = build_modular(
            lm="tiny", encoders=["audio"], encoder_options={"audio": {"transcript": on}}, feature_cache=False
        )
        bb.processor.feature_cache = FeatureCache(tmp_path / f"features-{on}")
        batch = bb.processor([conv])
        assert "Transcript" not in bb.tokenizer.decode(batch.tensors["input_ids"][0])
        lengths[on] = int(batch.tensors["attention_mask"].sum())
    assert lengths[True] == lengths[False]


def test_transcribing_leaves_torchs_random_stream_alone():
    """The decoder is built at the first clip a run transcribes, after the run seeded torch; building it
    drew from that stream, so turning transcripts on (or finding them cached) reshuffled training: the
    tones set's seed 1 scored 0.683 with transcripts on and 0.950 off although no tone got a word."""
    import numpy as np
    import torch

    tone = (0.5 * np.sin(2 * np.pi * 2000 * np.arange(16000) / 16000)).astype(np.float32)
    transcript._decoder.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    assert transcript.transcribe(tone) == ""
    assert torch.equal(torch.rand(4), expected)
