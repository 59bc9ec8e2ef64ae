"""Audio demo pairs (text_to_audio, text_audio_to_text) from the bundled espeak-ng speech clips.

Train and val pairs are made from the train voices and sentences; test pairs only from voices and
sentences that no train pair holds (see `SOURCES` and data_cards/demo_audio.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

import numpy as np

from omnireward.data.demo.pairs import FLIP, Choice, Ctx, plan, worded_twin
from omnireward.data.records import Media, Response

AUDIO_RATE = 16000
_FLIPS = ("speed", "pitch", "volume")
_SPEECH_PROMPTS = [
    'A voice saying "{s}".',
    'Speech: "{s}"',
    'Someone says "{s}" clearly.',
    'Read this sentence aloud: "{s}"',
]
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
# Criteria for the flips in other words than CRITERIA's: only the test split uses them (pairs.wording).
PARAPHRASES = {
    "fast": [
        "The quicker talker.",
        "Pick the clip where the words come out at a higher speed.",
        "I want the one spoken at a brisk, rapid pace.",
    ],
    "slow": [
        "The more unhurried talker.",
        "Pick the clip where the words come out at a lower speed.",
        "I want the one spoken at a calm, leisurely pace.",
    ],
    "high": [
        "The one with the higher voice.",
        "Pick the clip whose voice sits higher, like a soprano.",
        "I want a high, light voice.",
    ],
    "low": [
        "The one with the lower voice.",
        "Pick the clip whose voice sits lower, like a bass.",
        "I want a low, rumbling voice.",
    ],
    "loud": ["The louder one.", "Higher volume wins.", "Pick whichever is played at a greater level."],
    "quiet": ["The softer one.", "Prefer the quieter clip.", "Pick whichever is played at a lower level."],
}


# Which bundled sources each split draws from (manifest.tsv's `split` column): val makes new pairs of
# the train voices and sentences; test only hears voices and sentences the train split never has.
SOURCES = {"train": "train", "val": "train", "test": "test"}


@dataclass(frozen=True)
class Clip:
    """One bundled clip: a sentence spoken by an espeak-ng voice in one variant (normal, fast, low...)."""

    name: str
    split: str
    voice: str
    variant: str
    sentence: str
    wav: np.ndarray = field(repr=False, compare=False)


@lru_cache(maxsize=1)
def bundled_clips() -> tuple[Clip, ...]:
    """Every clip in omnireward/assets/speech/, in manifest order."""
    import soundfile as sf

    root = files("omnireward") / "assets" / "speech"
    out = []
    for row in (root / "manifest.tsv").read_text().splitlines()[1:]:
        name, split, voice, variant, sentence = row.split("\t")
        with (root / name).open("rb") as fh:
            wav, sr = sf.read(fh, dtype="float32")
        assert sr == AUDIO_RATE, f"{name}: bundled speech must be {AUDIO_RATE} Hz"
        out.append(Clip(name, split, voice, variant, sentence, wav))
    return tuple(out)


class _Pool:
    """The clips one demo split may use, looked up by (voice, sentence, variant)."""

    def __init__(self, split: str):
        clips = [c for c in bundled_clips() if c.split == SOURCES[split]]
        self.clips = {(c.voice, c.sentence, c.variant): c for c in clips}
        self.voices = sorted({c.voice for c in clips})

    def sentences(self, voice: str, variant: str = "normal") -> list[str]:
        return sorted(s for v, s, k in self.clips if v == voice and k == variant)


def _augment(ctx: Ctx, wav: np.ndarray, gain: float | None = None) -> np.ndarray:
    """Distinct files from few clips: random gain and random leading/trailing silence."""
    gain = ctx.rng.uniform(0.6, 0.95) if gain is None else gain
    pad = [int(ctx.rng.uniform(0.05, 0.4) * AUDIO_RATE) for _ in range(2)]
    return np.concatenate([np.zeros(pad[0], np.float32), wav * gain, np.zeros(pad[1], np.float32)])


def _noisy(ctx: Ctx, wav: np.ndarray) -> tuple[np.ndarray, str]:
    kind = ctx.pick(["white", "hum", "clipping"])
    power = float(np.mean(wav**2))
    if kind == "white":
        snr = ctx.rng.uniform(0, 6)
        return wav + ctx.rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), wav.shape), kind
    if kind == "hum":
        t = np.arange(len(wav)) / AUDIO_RATE
        hum = sum(np.sin(2 * np.pi * 50 * k * t + ctx.rng.uniform(0, 6.3)) / k for k in (1, 2, 3, 4))
        return wav + hum * np.sqrt(power / np.mean(hum**2)) * ctx.rng.uniform(0.8, 1.5), kind
    return np.clip(wav * ctx.rng.uniform(8, 15), -0.5, 0.5), kind


def _save_audio(ctx: Ctx, wav: np.ndarray) -> Media:
    import soundfile as sf

    path, rel = ctx.new_media(".flac")
    sf.write(path, np.clip(wav, -1, 1), AUDIO_RATE, format="FLAC", subtype="PCM_16")
    return Media("audio", rel)


def _audio_unit(rule: str, ctx: Ctx, pool: _Pool, flip: str) -> list[Choice]:
    voice = ctx.pick(pool.voices)
    used: list[str] = []  # bundled clips behind this unit, recorded in meta.clips

    def wav(sentence: str, variant: str = "normal") -> np.ndarray:
        clip = pool.clips[(voice, sentence, variant)]
        used.append(clip.name)
        return clip.wav

    def choice(good, bad, criteria=None, **detail):
        return Choice(
            "text_to_audio",
            prompt,
            Response(media=[_save_audio(ctx, good)]),
            Response(media=[_save_audio(ctx, bad)]),
            rule,
            criteria,
            detail={"voice": voice, "clips": used, **detail},
        )

    normal = pool.sentences(voice)
    sentence = ctx.pick(normal)
    other = ctx.pick([s for s in normal if s != sentence])
    prompt = ctx.pick(_SPEECH_PROMPTS).format(s=sentence)
    if rule == "content":
        return [choice(_augment(ctx, wav(sentence)), _augment(ctx, wav(other)), ctx.maybe(CRITERIA["content"]))]
    if rule == "noise":
        clean = _augment(ctx, wav(sentence))
        bad, kind = _noisy(ctx, clean)
        return [choice(clean, bad, ctx.maybe(CRITERIA["quality"]), noise=kind)]
    if rule == "transcript":
        heard = _save_audio(ctx, _augment(ctx, wav(sentence)))
        return [
            Choice(
                "text_audio_to_text",
                ctx.pick(_SPEECH_QUESTIONS),
                Response(f'The speaker says: "{sentence}".'),
                Response(f'The speaker says: "{other}".'),
                rule,
                prompt_media=[heard],
                detail={"voice": voice, "clips": used},
            )
        ]
    if flip == "volume":
        clean = wav(sentence)
        loud = _augment(ctx, clean, ctx.rng.uniform(0.8, 0.95))
        quiet = _augment(ctx, clean, ctx.rng.uniform(0.06, 0.12))
        base = choice(loud, quiet, flip=flip)
        return worded_twin(ctx, base, CRITERIA, PARAPHRASES, "loud", "quiet")
    hi, lo = ("fast", "slow") if flip == "speed" else ("high", "low")
    sentence = ctx.pick(pool.sentences(voice, hi))
    prompt = ctx.pick(_SPEECH_PROMPTS).format(s=sentence)
    base = choice(_augment(ctx, wav(sentence, hi)), _augment(ctx, wav(sentence, lo)), flip=flip)
    return worded_twin(ctx, base, CRITERIA, PARAPHRASES, hi, lo)


def build(n: int, ctx: Ctx) -> list[list[Choice]]:
    shares = {"content": 0.25, "noise": 0.25, "transcript": 0.15, FLIP: 0.35}
    pool = _Pool(ctx.split)
    rules = plan(n, shares, ctx.rng)
    # Flip kinds in equal shares (then shuffled), so even a small set holds all three.
    flips = iter(ctx.rng.permutation([_FLIPS[i % len(_FLIPS)] for i in range(rules.count(FLIP))]).tolist())
    return [_audio_unit(rule, ctx, pool, next(flips) if rule == FLIP else "") for rule in rules]
