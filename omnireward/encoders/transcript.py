"""Greedy transcripts from Whisper tiny.en's decoder (the converted weights the audio encoder also uses)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from omnireward.encoders import whisper
from omnireward.encoders.base import frozen
from omnireward.errors import ModelError

VERSION = "1"  # bump when decoding changes, so cached transcripts are redone
MAX_NEW_TOKENS = 64  # ~45 words: a reward prompt needs the gist of a clip, not a 30 s monologue
_WINDOW = 30 * whisper.SAMPLE_RATE  # Whisper decodes from its full 30 s window; shorter inputs make it repeat
# tiny.en's special tokens (tokenizer.json of the same package)
_EOT, _SOT, _NO_TIMESTAMPS, _BLANK = 50256, 50257, 50362, 220


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


def transcribe(wave: np.ndarray) -> str:
    """The words in 16 kHz mono speech (at most its first 30 s), by greedy decoding (silence can give "you")."""
    from transformers.utils import logging as hf_logging

    model, tokenizer, config = _decoder()
    mel = whisper.log_mel(wave, _WINDOW)[None]
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # Whisper's generate warns about settings it fills in itself
    try:
        with torch.no_grad():
            ids = model.generate(input_features=mel, generation_config=config)
    finally:
        hf_logging.set_verbosity(verbosity)
    return tokenizer.decode(ids[0].tolist(), skip_special_tokens=True).strip()
