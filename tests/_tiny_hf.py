"""Tiny random checkpoints of real HF architectures, built in code and saved as local folders.

Each `save_*` writes what a hub repository holds (config, safetensors, tokenizer, processor
configs, chat template) so the backbone loads it "by local path" exactly as it loads a real one.
The tokenizer is a byte-level BPE trained here on a few sentences, with the special tokens each
processor needs; image processors and feature extractors are built from their classes.
Nothing is downloaded.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

CORPUS = (
    """How do I boil an egg? Sure! To boil an egg, start with the basics and go step by step.
No. Figure it out yourself. Stop asking me things. Whatever, not my problem.
a photo of a cat, a dog barking twice, a red car on the road, people riding bikes in the park.
Which image matches the prompt better? Which answer is more helpful? Describe the video.
the cat is sleeping. open the window please. prefer the clip with less background noise.
Response A is better. Response B is better. The first one is clear and the second one is blurry.
"""
    * 3
)

# Qwen's chat markers plus every media marker of the Qwen2.5-VL/Qwen3-VL, Qwen2.5-Omni and
# Qwen2-Audio processors; all tiny tokenizers share this vocabulary.
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|AUDIO|>",
]

# Named tokens each family's processor reads from `tokenizer.<name>`.
VL_TOKENS = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}
OMNI_TOKENS = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
AUDIO_TOKENS = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}


def chat_template(image: str = "", video: str = "", audio: str = "", default_system: str = "") -> str:
    """A Qwen-style ChatML template; media items render as the given placeholder strings."""
    system = (
        (
            "{%- if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
            + default_system
            + "<|im_end|>\\n' }}{%- endif %}"
        )
        if default_system
        else ""
    )
    return (
        system + "{%- for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string %}{{ message['content'] }}"
        "{%- else %}{%- for item in message['content'] %}"
        "{%- if item['type'] == 'image' %}{{ '" + image + "' }}"
        "{%- elif item['type'] == 'video' %}{{ '" + video + "' }}"
        "{%- elif item['type'] == 'audio' %}{{ '" + audio + "' }}"
        "{%- elif item['type'] == 'text' %}{{ item['text'] }}"
        "{%- endif %}{%- endfor %}{%- endif %}"
        "{{ '<|im_end|>\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
    )


@lru_cache(maxsize=1)
def _bpe() -> tuple[dict, list]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tk.train_from_iterator(CORPUS.splitlines(), trainer)
    model = json.loads(tk.to_str())["model"]
    return model["vocab"], [tuple(m) for m in model["merges"]]


def tokenizer(named: dict[str, str] | None = None, template: str | None = None):
    """A Qwen2 byte-level BPE tokenizer over a tiny vocabulary, with all media special tokens."""
    from transformers import Qwen2Tokenizer

    vocab, merges = _bpe()
    tok = Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=SPECIAL[1:],
        **(named or {}),
    )
    if template:
        tok.chat_template = template
    return tok


def _ids(tok, names: dict[str, str]) -> dict[str, int]:
    return {k: tok.convert_tokens_to_ids(v) for k, v in names.items()}


def _text_cfg(tok, hidden: int = 32, layers: int = 2, **extra) -> dict:
    return dict(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        **extra,
    )


def _save(model, tok, out: Path, extra_files: dict[str, dict | str] | None = None) -> Path:
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    for name, content in (extra_files or {}).items():
        text = json.dumps(content, indent=2) if isinstance(content, dict) else content
        (out / name).write_text(text)
    return out


# Small images and a low video resolution keep sequences short (a few dozen media tokens).
_IMAGE_PIXELS = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
_VIDEO_PIXELS = {"shortest_edge": 28 * 28 * 2, "longest_edge": 28 * 28 * 8}


def _vision_processor_files(image_processor, video: dict, processor_class: str, template: str) -> dict:
    """The files a hub VL repository carries besides the tokenizer (hub layout, one file each)."""
    img = image_processor.to_dict()
    img["image_processor_type"] = "Qwen2VLImageProcessor"
    img.pop("_processor_class", None)
    return {
        "preprocessor_config.json": {**img, "processor_class": processor_class},
        "video_preprocessor_config.json": {**video, "processor_class": processor_class},
        "chat_template.jinja": template,
    }


def _qwen_vl_tokens(tok) -> dict:
    """The vision placeholder token ids the Qwen VL configs name."""
    return _ids(
        tok,
        {
            "image_token_id": "<|image_pad|>",
            "video_token_id": "<|video_pad|>",
            "vision_start_token_id": "<|vision_start|>",
            "vision_end_token_id": "<|vision_end|>",
        },
    )


def _qwen_vl_files(processor_class: str, template: str | None = None) -> dict:
    """Processor files of a Qwen2/2.5-VL or Omni checkpoint (14-pixel patches, CLIP normalisation)."""
    from transformers import Qwen2VLImageProcessorPil

    template = template or chat_template(
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|vision_start|><|video_pad|><|vision_end|>",
        default_system="You are a helpful assistant.",
    )
    video = {
        "video_processor_type": "Qwen2VLVideoProcessor",
        "size": _VIDEO_PIXELS,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_sample_frames": False,
    }
    return _vision_processor_files(Qwen2VLImageProcessorPil(**_IMAGE_PIXELS), video, processor_class, template)


def save_qwen2_5_vl(out, seed: int = 0) -> Path:
    """Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration): 2 text layers, 2 vision blocks."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = tokenizer(VL_TOKENS)
    cfg = Qwen2_5_VLConfig(
        text_config=_text_cfg(
            tok, rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 1e6}
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            out_hidden_size=32,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[1],
            tokens_per_second=2,
        ),
        **_qwen_vl_tokens(tok),
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    return _save(model, tok, out, _qwen_vl_files("Qwen2_5_VLProcessor"))


def save_qwen3_vl(out, seed: int = 0) -> Path:
    """Qwen3-VL (Qwen3VLForConditionalGeneration): 16-pixel patches, deepstack features from block 0."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tok = tokenizer(VL_TOKENS)
    ids = _qwen_vl_tokens(tok)
    cfg = Qwen3VLConfig(
        text_config=_text_cfg(
            tok,
            head_dim=8,
            rope_parameters={
                "rope_type": "default",
                "mrope_section": [2, 1, 1],
                "mrope_interleaved": True,
                "rope_theta": 5e6,
            },
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            out_hidden_size=32,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        **ids,
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    template = chat_template(
        "<|vision_start|><|image_pad|><|vision_end|>", "<|vision_start|><|video_pad|><|vision_end|>"
    )
    image = Qwen2VLImageProcessorPil(
        patch_size=16,
        min_pixels=32 * 32 * 4,
        max_pixels=32 * 32 * 16,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    video = {
        "video_processor_type": "Qwen3VLVideoProcessor",
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "size": {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 32},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_sample_frames": False,
    }
    return _save(model, tok, out, _vision_processor_files(image, video, "Qwen3VLProcessor", template))


def _audio_feature_extractor(seconds: int = 2):
    from transformers import WhisperFeatureExtractor

    # 128 mel bins like Qwen2-Audio / Qwen2.5-Omni; a 2 s window (the bundled clips are shorter) instead of 30 s.
    return WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        chunk_length=seconds,
        hop_length=160,
        n_fft=400,
        return_attention_mask=True,
    )


def save_qwen2_audio(out, seed: int = 0) -> Path:
    """Qwen2-Audio (Qwen2AudioForConditionalGeneration) with a 2-second audio window."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    fe = _audio_feature_extractor()
    template = chat_template(
        audio="Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\\n", default_system="You are a helpful assistant."
    )
    tok = tokenizer(AUDIO_TOKENS)
    cfg = Qwen2AudioConfig(
        audio_config=dict(
            num_mel_bins=128,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            d_model=32,
            max_source_positions=fe.nb_max_frames // 2,
        ),
        text_config={"model_type": "qwen2", **_text_cfg(tok)},
        audio_token_id=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(cfg).eval()
    model.save_pretrained(out, safe_serialization=True)
    Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok, chat_template=template).save_pretrained(out)
    return Path(out)


def save_qwen2_5_omni(out, seed: int = 0) -> Path:
    """Qwen2.5-Omni (the whole model's config and layout, talker disabled: the thinker's weights only)."""
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    tok = tokenizer(OMNI_TOKENS)
    fe = _audio_feature_extractor()
    t = {k: tok.convert_tokens_to_ids(v) for k, v in OMNI_TOKENS.items()}
    thinker = dict(
        text_config=_text_cfg(
            tok, rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 1e6}
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            out_hidden_size=32,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[1],
        ),
        audio_config=dict(
            num_mel_bins=128,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            d_model=32,
            output_dim=32,
            max_source_positions=fe.nb_max_frames // 2,
            n_window=50,
        ),
        audio_token_index=t["audio_token"],
        image_token_index=t["image_token"],
        video_token_index=t["video_token"],
        audio_start_token_id=t["audio_bos_token"],
        audio_end_token_id=t["audio_eos_token"],
        vision_start_token_id=t["vision_bos_token"],
        vision_end_token_id=t["vision_eos_token"],
    )
    # The talker is never built (no audio output); its vocabulary only has to hold the default token ids.
    cfg = Qwen2_5OmniConfig(thinker_config=thinker, talker_config={"vocab_size": 160000}, enable_audio_output=False)
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(cfg).eval()
    template = chat_template(
        "<|vision_bos|><|IMAGE|><|vision_eos|>",
        "<|vision_bos|><|VIDEO|><|vision_eos|>",
        "<|audio_bos|><|AUDIO|><|audio_eos|>",
    )
    files = _qwen_vl_files("Qwen2_5OmniProcessor", template)
    # The hub repository stores the image processor and the feature extractor in one file.
    files["preprocessor_config.json"].update({k: v for k, v in fe.to_dict().items() if k != "feature_extractor_type"})
    files["preprocessor_config.json"]["feature_extractor_type"] = "WhisperFeatureExtractor"
    return _save(model, tok, out, files)


def save_text_lm(out, seed: int = 0, hidden: int = 32, tie_word_embeddings: bool = True) -> Path:
    """A tiny Qwen2 causal LM with a ChatML template: the text-only family."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tokenizer(template=chat_template())
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(
        Qwen2Config(**_text_cfg(tok, hidden=hidden), tie_word_embeddings=tie_word_embeddings)
    ).eval()
    return _save(model, tok, out)


SAVERS = {
    "qwen2_5_vl": save_qwen2_5_vl,
    "qwen3_vl": save_qwen3_vl,
    "qwen2_audio": save_qwen2_audio,
    "qwen2_5_omni": save_qwen2_5_omni,
    "text": save_text_lm,
}


def save_qwen2_vl(out, seed: int = 0) -> Path:
    """Qwen2-VL (Qwen2VLForConditionalGeneration), a family the package does not name: docs/extending.md
    registers it from a user's module. 2 text layers, 2 vision blocks."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tok = tokenizer(VL_TOKENS)
    cfg = Qwen2VLConfig(
        text_config=_text_cfg(
            tok, rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 1e6}
        ),
        vision_config=dict(
            depth=2, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=4, patch_size=14, spatial_merge_size=2
        ),
        **_qwen_vl_tokens(tok),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(cfg).eval()
    return _save(model, tok, out, _qwen_vl_files("Qwen2VLProcessor"))
