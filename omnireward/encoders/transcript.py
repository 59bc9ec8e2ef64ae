"""Greedy transcripts from Whisper tiny.en's decoder (the converted weights the audio encoder also uses)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from omnireward.encoders import whisper
from omnireward.encoders.base import frozen
from omnireward.errors import ModelError

VERSION = "2"  # bump when decoding changes, so cached transcripts are redone (2: no-speech windows give "")
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


@functools.lru_cache(maxsize=1)
def _decoder():
    """Frozen `WhisperForConditionalGeneration` with the converted weights, its tokenizer and decoding settings."""
    from tokenizers import Tokenizer
    from transformers import GenerationConfig, WhisperForConditionalGeneration

    sd = whisper.load_state_dict()
    model = WhisperForConditionalGeneration(whisper.hf_config(sd))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing != ["proj_out.weight"] or unexpected:  # proj_out is tied to the decoder's token embeddings
        raise ModelError(f"converted Whisper weights do not fit the model: missing {missing}, unexpected {unexpected}")
    tokenizer = Tokenizer.from_file(str(whisper.ct2_model_dir() / "tokenizer.json"))
    config = GenerationConfig(
        decoder_start_token_id=_SOT, no_timestamps_token_id=_NO_TIMESTAMPS, is_multilingual=False,
        bos_token_id=_EOT, eos_token_id=_EOT, pad_token_id=_EOT, do_sample=False, num_beams=1,
        max_new_tokens=MAX_NEW_TOKENS, begin_suppress_tokens=[_BLANK, _EOT])  # Whisper's own: no empty start
    return frozen(model), tokenizer, config


def decode(wave: np.ndarray) -> tuple[str, float, float]:
    """Greedy words of 16 kHz mono audio (its first 30 s), the no-speech probability and the words'
    average log-probability (openai-whisper's: summed over the tokens and the end token, / (tokens + 1))."""
    from transformers.utils import logging as hf_logging

    model, tokenizer, config = _decoder()
    mel = whisper.log_mel(wave, _WINDOW)[None]
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # Whisper's generate warns about settings it fills in itself
    try:
        with torch.no_grad():
            enc = model.get_encoder()(mel)
            first = model(encoder_outputs=enc, decoder_input_ids=torch.tensor([[_SOT]])).logits[0, -1]
            no_speech = float(first.float().softmax(-1)[_NO_SPEECH])
            out = model.generate(input_features=mel, generation_config=config, output_scores=True,
                                 return_dict_in_generate=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    ids = out.sequences[0, -len(out.scores):].tolist() if out.scores else []
    logp = [float(s[0].float().log_softmax(-1)[t]) for s, t in zip(out.scores, ids)]
    words = [t for t in ids if t != _EOT]
    avg = sum(logp) / (len(words) + 1)
    return tokenizer.decode(words, skip_special_tokens=True).strip(), no_speech, avg


def is_speech(no_speech: float) -> bool:
    """Whether a window holds speech, by Whisper's own no-speech probability."""
    return no_speech <= NO_SPEECH_THRESHOLD


def transcribe(wave: np.ndarray) -> str:
    """The words in 16 kHz mono speech (at most its first 30 s), by greedy decoding; "" for a clip
    Whisper judges to hold no speech (a tone, a noise, music), so no invented words reach the LM."""
    words, no_speech, _ = decode(wave)
    return words if is_speech(no_speech) else ""
