"""Greedy transcripts from Whisper tiny.en's decoder (the converted weights the audio encoder also uses)."""

from __future__ import annotations

import functools
import re

import numpy as np
import torch

from omnireward.encoders import whisper
from omnireward.encoders.base import frozen, seeded_init
from omnireward.errors import ModelError

VERSION = "3"  # bump when decoding changes, so cached transcripts are redone (3: clips without speech give "")
MAX_NEW_TOKENS = 64  # ~45 words: a reward prompt needs the gist of a clip, not a 30 s monologue
_WINDOW = 30 * whisper.SAMPLE_RATE  # Whisper decodes from its full 30 s window; shorter inputs make it repeat
# tiny.en's special tokens (tokenizer.json of the same package)
_EOT, _SOT, _NO_SPEECH, _NO_TIMESTAMPS, _BLANK = 50256, 50257, 50361, 50362, 220
# A window holds no speech when the `<|nocaptions|>` token's probability right after
# <|startoftranscript|> is above NO_SPEECH_THRESHOLD (openai-whisper's 0.6); such a clip gets no words.
# openai-whisper also asks for an average log-probability under -1.0, but it decodes with non-speech
# symbols suppressed; greedy decoding here writes sound captions ("(bell dings)", "[SOUND]") at
# -0.6 to -0.9 for tones, so that second test would keep them. Measured (tests/test_transcript.py):
# the 168 bundled speech clips 0.02-0.40, tones 0.62-0.78, white noise 0.87, silence 0.95.
NO_SPEECH_THRESHOLD = 0.6
# Whisper learnt from subtitles that mark non-speech in brackets ("(whistle)", "[MUSIC]", "♪"): a
# transcript with no words outside such marks holds no speech either (a pure 2 kHz tone: "(whistle)"
# at a no-speech probability of 0.47). openai-whisper suppresses these symbols while decoding instead.
_SOUND_CAPTION = re.compile(r"\([^)]*\)|\[[^\]]*\]|[♩♪♫♬]")


@functools.lru_cache(maxsize=1)
def _decoder():
    """Frozen `WhisperForConditionalGeneration` with the converted weights, its tokenizer and decoding settings."""
    from tokenizers import Tokenizer
    from transformers import GenerationConfig, WhisperForConditionalGeneration

    sd = whisper.load_state_dict()
    # Built lazily, at the first clip a run transcribes: under its own RNG, so that transcribing (or
    # finding the transcripts cached) leaves training's shuffles and initialisations where they were.
    model = seeded_init(lambda: WhisperForConditionalGeneration(whisper.hf_config(sd)))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing != ["proj_out.weight"] or unexpected:  # proj_out is tied to the decoder's token embeddings
        raise ModelError(f"converted Whisper weights do not fit the model: missing {missing}, unexpected {unexpected}")
    tokenizer = Tokenizer.from_file(str(whisper.ct2_model_dir() / "tokenizer.json"))
    config = GenerationConfig(
        decoder_start_token_id=_SOT,
        no_timestamps_token_id=_NO_TIMESTAMPS,
        is_multilingual=False,
        bos_token_id=_EOT,
        eos_token_id=_EOT,
        pad_token_id=_EOT,
        do_sample=False,
        num_beams=1,
        max_new_tokens=MAX_NEW_TOKENS,
        begin_suppress_tokens=[_BLANK, _EOT],
    )  # Whisper's own: no empty start
    return frozen(model), tokenizer, config


def _no_speech(model, enc) -> float:
    """Probability of `<|nocaptions|>` right after <|startoftranscript|>, as openai-whisper reads it."""
    first = model(encoder_outputs=enc, decoder_input_ids=torch.tensor([[_SOT]])).logits[0, -1]
    return float(first.float().softmax(-1)[_NO_SPEECH])


def decode(wave: np.ndarray, *, stop_if_silent: bool = False) -> tuple[str, float, float | None]:
    """Greedy words of 16 kHz mono audio (its first 30 s), the no-speech probability and the words'
    average log-probability (openai-whisper's: summed over the tokens and the end token, / (tokens + 1)).
    With `stop_if_silent`, a window above the no-speech threshold is not decoded: ("", p, None)."""
    from transformers.utils import logging as hf_logging

    model, tokenizer, config = _decoder()
    mel = whisper.log_mel(wave, _WINDOW)[None]
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # Whisper's generate warns about settings it fills in itself
    try:
        with torch.no_grad():
            enc = model.get_encoder()(mel)
            no_speech = _no_speech(model, enc)
            if stop_if_silent and no_speech > NO_SPEECH_THRESHOLD:
                return "", no_speech, None
            out = model.generate(
                encoder_outputs=enc, generation_config=config, output_scores=True, return_dict_in_generate=True
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    ids = out.sequences[0, -len(out.scores) :].tolist() if out.scores else []
    logp = [float(s[0].float().log_softmax(-1)[t]) for s, t in zip(out.scores, ids)]
    words = [t for t in ids if t != _EOT]
    return tokenizer.decode(words, skip_special_tokens=True).strip(), no_speech, sum(logp) / (len(words) + 1)


def is_speech(words: str, no_speech: float) -> bool:
    """Whether a window holds speech: Whisper's own no-speech probability is at most the threshold and
    its words are more than sound captions."""
    return no_speech <= NO_SPEECH_THRESHOLD and re.search(r"\w", _SOUND_CAPTION.sub("", words)) is not None


def transcribe(wave: np.ndarray) -> str:
    """The words in 16 kHz mono speech (at most its first 30 s), by greedy decoding; "" for a clip
    Whisper judges to hold no speech (a tone, a noise, music, silence), so no invented words reach the LM."""
    words, no_speech, _ = decode(wave, stop_if_silent=True)
    return words if is_speech(words, no_speech) else ""
