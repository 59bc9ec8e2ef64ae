"""Audio demo pairs (text_to_audio, text_audio_to_text) from the bundled espeak-ng speech clips."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import numpy as np

from omnireward.data.demo.pairs import FLIP, Choice, Ctx, plan, twin
from omnireward.data.records import Media, Response

AUDIO_RATE = 16000
_SPEECH_PROMPTS = ['A voice saying "{s}".', 'Speech: "{s}"', 'Someone says "{s}" clearly.',
                   'Read this sentence aloud: "{s}"']
_SPEECH_QUESTIONS = ["What does the speaker say?", "Transcribe this recording.", "What is said in this clip?"]
CRITERIA = {
    "fast": ["Prefer the faster speech.", "Prefer the speaker who talks more quickly."],
    "slow": ["Prefer the slower speech.", "Prefer the speaker who talks more slowly."],
    "high": ["Prefer the higher-pitched voice.", "Prefer the voice with the higher pitch."],
    "low": ["Prefer the lower-pitched voice.", "Prefer the deeper voice."],
    "loud": ["Prefer the louder recording.", "Prefer the clip with the higher volume."],
    "quiet": ["Prefer the quieter recording.", "Prefer the clip with the lower volume."],
    "quality": ["Prefer the clean recording without background noise.", "Prefer the clearer audio."],
    "content": ["Prefer the clip that says the requested sentence."],
}


@lru_cache(maxsize=1)
def _speech() -> dict[tuple[int, str], tuple[str, np.ndarray]]:
    """Bundled clips by (sentence index, variant): (sentence, waveform)."""
    import soundfile as sf

    root = files("omnireward") / "assets" / "speech"
    rows = (root / "manifest.tsv").read_text().splitlines()[1:]
    sentences = sorted({r.split("\t")[2] for r in rows}, key=[r.split("\t")[2] for r in rows].index)
    out = {}
    for row in rows:
        name, variant, sentence = row.split("\t")
        with (root / name).open("rb") as fh:
            wav, sr = sf.read(fh, dtype="float32")
        assert sr == AUDIO_RATE, f"{name}: bundled speech must be {AUDIO_RATE} Hz"
        out[(sentences.index(sentence), variant)] = (sentence, wav)
    return out


def _sentence_ids(variant: str) -> list[int]:
    return sorted(i for i, v in _speech() if v == variant)


def _augment(ctx: Ctx, wav: np.ndarray, gain: float | None = None) -> np.ndarray:
    """Distinct files from few clips: random gain and random leading/trailing silence."""
    gain = ctx.rng.uniform(0.6, 0.95) if gain is None else gain
    pad = [int(ctx.rng.uniform(0.05, 0.4) * AUDIO_RATE) for _ in range(2)]
    return np.concatenate([np.zeros(pad[0], np.float32), wav * gain, np.zeros(pad[1], np.float32)])


def _noisy(ctx: Ctx, wav: np.ndarray) -> tuple[np.ndarray, str]:
    kind = ctx.pick(["white", "hum", "clipping"])
    power = float(np.mean(wav ** 2))
    if kind == "white":
        snr = ctx.rng.uniform(0, 6)
        return wav + ctx.rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), wav.shape), kind
    if kind == "hum":
        t = np.arange(len(wav)) / AUDIO_RATE
        hum = sum(np.sin(2 * np.pi * 50 * k * t + ctx.rng.uniform(0, 6.3)) / k for k in (1, 2, 3, 4))
        return wav + hum * np.sqrt(power / np.mean(hum ** 2)) * ctx.rng.uniform(0.8, 1.5), kind
    return np.clip(wav * ctx.rng.uniform(8, 15), -0.5, 0.5), kind


def _save_audio(ctx: Ctx, wav: np.ndarray) -> Media:
    import soundfile as sf

    path, rel = ctx.new_media(".flac")
    sf.write(path, np.clip(wav, -1, 1), AUDIO_RATE, format="FLAC", subtype="PCM_16")
    return Media("audio", rel)


def _audio_unit(rule: str, ctx: Ctx) -> list[Choice]:
    speech = _speech()
    normal = _sentence_ids("normal")
    i = ctx.pick(normal)
    j = ctx.pick([k for k in normal if k != i])
    sentence, wav = speech[(i, "normal")]
    prompt = ctx.pick(_SPEECH_PROMPTS).format(s=sentence)

    def choice(good, bad, criteria=None, **detail):
        return Choice("text_to_audio", prompt, Response(media=[_save_audio(ctx, good)]),
                      Response(media=[_save_audio(ctx, bad)]), rule, criteria, detail=detail)

    if rule == "content":
        wrong = _augment(ctx, speech[(j, "normal")][1])
        return [choice(_augment(ctx, wav), wrong, ctx.maybe(CRITERIA["content"]))]
    if rule == "noise":
        clean = _augment(ctx, wav)
        bad, kind = _noisy(ctx, clean)
        return [choice(clean, bad, ctx.maybe(CRITERIA["quality"]), noise=kind)]
    if rule == "transcript":
        heard = _save_audio(ctx, _augment(ctx, wav))
        return [Choice("text_audio_to_text", ctx.pick(_SPEECH_QUESTIONS),
                       Response(f'The speaker says: "{sentence}".'),
                       Response(f'The speaker says: "{speech[(j, "normal")][0]}".'), rule,
                       prompt_media=[heard])]
    flip = ctx.pick(["speed", "pitch", "volume"])
    if flip == "volume":
        loud = _augment(ctx, wav, ctx.rng.uniform(0.8, 0.95))
        quiet = _augment(ctx, wav, ctx.rng.uniform(0.06, 0.12))
        base = choice(loud, quiet, flip=flip)
        return twin(base, ctx.pick(CRITERIA["loud"]), ctx.pick(CRITERIA["quiet"]))
    hi, lo = ("fast", "slow") if flip == "speed" else ("high", "low")
    k = ctx.pick(_sentence_ids(hi))
    sentence = speech[(k, hi)][0]
    prompt = ctx.pick(_SPEECH_PROMPTS).format(s=sentence)
    base = choice(_augment(ctx, speech[(k, hi)][1]), _augment(ctx, speech[(k, lo)][1]), flip=flip)
    return twin(base, ctx.pick(CRITERIA[hi]), ctx.pick(CRITERIA[lo]))


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"content": 0.25, "noise": 0.25, "transcript": 0.15, FLIP: 0.35}
    return [_audio_unit(rule, ctx) for rule in plan(n, shares, ctx.rng)]
