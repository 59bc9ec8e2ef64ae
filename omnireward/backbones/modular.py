"""Modular backbone: per-modality encoders → projectors → any causal LM.

Media embeddings are spliced into the LM's input embeddings at placeholder positions, so the
LM itself never needs new tokens and stays loadable by plain transformers.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from omnireward.backbones.base import Batch, LogitsProcessor
from omnireward.backbones.features import FeatureCache
from omnireward.backbones.modular_processor import ModularProcessor
from omnireward.backbones.packing import block_mask, gather_rewards_hidden
from omnireward.quant.bnb import is_quantized
from omnireward.quant.dense import save_dense


class Projector(nn.Module):
    """LayerNorm → Linear → GELU → Linear → LayerNorm: encoder tokens into the LM's embedding space.

    The output norm's gain starts at the spread of the LM's own token embeddings, so media tokens
    enter the LM at the scale its text tokens have (a scale it can then learn to change).
    """

    def __init__(self, in_dim: int, out_dim: int, scale: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, out_dim),
            nn.GELU(),
            nn.Linear(out_dim, out_dim),
            nn.LayerNorm(out_dim),
        )
        nn.init.constant_(self.net[-1].weight, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LabelWords(nn.Module):
    """Class probabilities -> one token in the LM's embedding space: sum_k p_k * emb(name_k).

    emb(name) is the mean of the LM's own input embeddings of the name's tokens, so the token
    says in the LM's words what a pretrained classifier recognised in the media ("tabby cat",
    "espresso", "airliner"): prompt-media matching starts from words the LM already relates,
    not from a projector that a few hundred pairs would have to align first. The table is fixed
    (a buffer, saved with the model).
    """

    def __init__(self, names: tuple[str, ...] | list[str], tokenizer, embeddings: nn.Embedding):
        super().__init__()
        weight = embeddings.weight.detach()  # rows are gathered before any copy: vocabularies can be large
        rows = []
        for name in names:
            ids = tokenizer(" " + name, add_special_tokens=False)["input_ids"]
            rows.append(weight[torch.tensor(ids, dtype=torch.long, device=weight.device)].float().mean(0))
        self.register_buffer("table", torch.stack(rows))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return (probs.to(self.table.dtype) @ self.table)[:, None, :]  # [N, 1, H]


class ModularBackbone(nn.Module):
    """Encoders → projectors → a causal LM; implements the `Backbone` protocol (backbones/base.py)."""

    kind = "modular"
    lm_prefix = "lm."

    def __init__(
        self,
        lm,
        tokenizer,
        encoders: dict[str, nn.Module] | None = None,
        *,
        max_length: int = 1024,
        feature_cache: FeatureCache | None = None,
        label_tokens: bool = False,
        descriptor_tokens: bool = False,
    ):
        super().__init__()
        self.lm = lm
        self.encoders = nn.ModuleDict(encoders or {})
        hidden = lm.config.hidden_size
        emb = lm.get_input_embeddings()
        scale = float(emb.weight.detach().float().std())
        self.projectors = nn.ModuleDict({m: Projector(e.out_dim, hidden, scale) for m, e in self.encoders.items()})
        # With `label_tokens`, media whose encoder has a pretrained classifier get one more token
        # after their feature tokens: the classifier's top classes as LM word embeddings.
        self.label_words = nn.ModuleDict(
            {
                m: LabelWords(e.label_names, tokenizer, emb)
                for m, e in self.encoders.items()
                if label_tokens and e.label_names
            }
        )
        self.processor = ModularProcessor(
            tokenizer,
            dict(self.encoders.items()),
            label_token=set(self.label_words),
            max_length=max_length,
            feature_cache=feature_cache,
            descriptor_tokens=descriptor_tokens,
        )

    # ---- the contract: what others see ---------------------------------------------------------
    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def hidden_size(self) -> int:
        return self.lm.config.hidden_size

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders.keys())

    @property
    def lora_targets(self) -> list[str] | str:
        present = {name.rsplit(".", 1)[-1] for name, m in self.lm.named_modules() if isinstance(m, nn.Linear)}
        found = [t for t in _PROJECTIONS if t in present]
        return found or "all-linear"

    def language_model(self) -> nn.Module:
        return self.lm

    def replace_language_model(self, lm: nn.Module) -> None:
        self.lm = lm

    def save(self, out: Path) -> None:
        """The LM (with tokenizer) as a plain HF folder `out/lm` that transformers loads as is."""
        lm_dir = Path(out) / "lm"
        if is_quantized(self.lm):  # trained over a quantised LM (quant=4bit|8bit): the folder's `quant` requantises
            save_dense(self.lm, lm_dir)
        else:
            self.lm.save_pretrained(lm_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(lm_dir)

    def reward_hidden(self, batch: Batch) -> torch.Tensor:
        if "segment_ids" in batch.tensors:  # prefix sharing: one packed sequence per group
            embeds = self._embed(batch)
            mask = block_mask(batch.tensors["segment_ids"], embeds.dtype)
            hs = self.lm.get_decoder()(
                inputs_embeds=embeds, attention_mask=mask, position_ids=batch.tensors["position_ids"]
            ).last_hidden_state
            return gather_rewards_hidden(hs, batch.tensors["reward_index"]).float()
        hs = self.hidden_states(batch)
        return hs[torch.arange(hs.shape[0], device=hs.device), batch.tensors["last_index"]].float()

    def layer_states(self, batch: Batch, layer: int = -1) -> torch.Tensor:
        """Hidden states [B, L, H] of `layer` over the batch's rows, packed or not (transformers'
        `hidden_states` index: 0 the embeddings, k decoder layer k's output, -1 the final normed state)."""
        embeds = self._embed(batch)
        if "segment_ids" in batch.tensors:  # prefix sharing
            mask, position_ids = block_mask(batch.tensors["segment_ids"], embeds.dtype), batch.tensors["position_ids"]
        else:
            mask = batch.tensors["attention_mask"]
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.lm.get_decoder()(
            inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, output_hidden_states=layer != -1
        )
        return out.last_hidden_state if layer == -1 else out.hidden_states[layer]

    def hidden_states(
        self, batch: Batch, continuation: torch.Tensor | None = None, continuation_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        embeds, mask = self._embed(batch), batch.tensors["attention_mask"]
        if continuation is not None:
            cont = self.lm.get_input_embeddings()(continuation).to(embeds.dtype)
            embeds = torch.cat([embeds, cont], 1)
            mask = torch.cat([mask, continuation_mask.to(mask.dtype)], 1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.lm.get_decoder()(
            inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids
        ).last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm.get_output_embeddings()(hidden)

    @torch.no_grad()
    def sample(
        self,
        batch: Batch,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> torch.Tensor:
        """Our own loop over the LM's KV cache: sampling is Gumbel-max (exact softmax sampling),
        which on CPU costs a fraction of `torch.multinomial` over a 50k vocabulary, and the
        positions follow the attention mask so left padding is harmless."""
        mask = batch.tensors["attention_mask"]
        if max_new_tokens <= 0:
            return torch.zeros((mask.shape[0], 0), dtype=torch.long, device=mask.device)
        cache_kw = _cache_keyword(self.lm)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        # Decoding runs in eval mode: no dropout in rollouts, and transformers turns the KV cache off
        # for a model that trains with gradient checkpointing.
        was_training = self.lm.training
        self.lm.eval()
        try:
            return self._sample(
                batch, mask, pos, cache_kw, max_new_tokens, temperature, top_p, generator, logits_processor
            )
        finally:
            self.lm.train(was_training)

    def _sample(self, batch, mask, pos, cache_kw, max_new_tokens, temperature, top_p, generator, logits_processor):
        tok = self.tokenizer
        eos = tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        B = mask.shape[0]
        out = self.lm(
            inputs_embeds=self._embed(batch), attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
        )
        next_pos = pos[:, -1:] + 1
        done = torch.zeros(B, dtype=torch.bool, device=mask.device)
        tokens: list[torch.Tensor] = []
        for step in range(max_new_tokens):
            scores = out.logits[:, -1].float()
            if logits_processor is not None:
                so_far = torch.stack(tokens, 1) if tokens else torch.zeros((B, 0), dtype=torch.long, device=mask.device)
                scores = logits_processor(so_far, scores)
            t = pick_token(scores, temperature, top_p, generator)
            t = torch.where(done, torch.full_like(t, pad), t)
            tokens.append(t)
            done |= t == eos
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=mask.device)], 1)
            out = self.lm(
                input_ids=t[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                use_cache=True,
                logits_to_keep=1,
                **{cache_kw: _cache_of(out)},
            )
            next_pos = next_pos + 1
        return torch.stack(tokens, 1)

    # ---- inside ------------------------------------------------------------------------------
    def _embed(self, batch: Batch) -> torch.Tensor:
        """Token embeddings with each media span filled by projected encoder tokens (+ label token)."""
        ids = batch.tensors["input_ids"]
        embeds = self.lm.get_input_embeddings()(ids)
        for enc, spec in batch.extra.get("media", {}).items():
            if enc in self.label_words:  # one pass of the encoder gives both
                feats, probs = self.encoders[enc].forward_with_labels(spec["x"])
                tokens = torch.cat([self.projectors[enc](feats), self.label_words[enc](probs).to(feats.dtype)], dim=1)
            else:
                tokens = self.projectors[enc](self.encoders[enc](spec["x"]))  # [N, T, H]
            N, T, H = tokens.shape
            b = spec["pos"][:, 0].repeat_interleave(T)
            t = (spec["pos"][:, 1:2] + torch.arange(T, device=ids.device)).reshape(-1)
            embeds = embeds.index_put((b, t), tokens.reshape(-1, H).to(embeds.dtype))
        return embeds


# Attention and MLP projections of Llama/Qwen/Mistral-style decoders.
_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _cache_keyword(lm) -> str:
    """transformers 5 names the KV cache argument `cache`; 4.x named it `past_key_values`."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def pick_token(scores: torch.Tensor, temperature: float, top_p: float, generator) -> torch.Tensor:
    """Greedy (temperature 0) or softmax sampling with top-p, via Gumbel-max."""
    if temperature <= 0:
        return scores.argmax(-1)
    scores = scores / temperature
    if top_p < 1.0:
        sorted_scores, order = scores.sort(-1, descending=True)
        probs = sorted_scores.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set reaching top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    if generator is not None and generator.device != scores.device:  # e.g. a CPU generator, CUDA scores
        noise = torch.empty(scores.shape, device=generator.device).exponential_(generator=generator).to(scores.device)
    else:
        noise = torch.empty_like(scores).exponential_(generator=generator)
    return (scores - noise.log()).argmax(-1)  # Gumbel-max: argmax(scores + Gumbel noise)
