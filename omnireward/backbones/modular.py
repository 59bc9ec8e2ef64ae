"""Modular backbone: per-modality encoders → projectors → any causal LM.

Media embeddings are spliced into the LM's input embeddings at placeholder positions, so the
LM itself never needs new tokens and stays loadable by plain transformers.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from omnireward.backbones.base import Batch, BackboneOutput, Conversation, Turn
from omnireward.backbones.features import FeatureCache
from omnireward.data.records import Media
from omnireward.errors import ModelError

# Private-use code points: cannot collide with text a user writes in a prompt by accident.
_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")
ENCODER_FOR_MEDIA = {"image": "image", "video": "video", "audio": "audio", "mesh": "mesh"}
# Words an encoder heard in a media item (a clip's transcript) follow its feature tokens as plain text.
TRANSCRIPT = ' Transcript: "{}"'


class Projector(nn.Module):
    """LayerNorm → Linear → GELU → Linear → LayerNorm: encoder tokens into the LM's embedding space.

    The output norm's gain starts at the spread of the LM's own token embeddings, so media tokens
    enter the LM at the scale its text tokens have (a scale it can then learn to change).
    """

    def __init__(self, in_dim: int, out_dim: int, scale: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), nn.GELU(),
                                 nn.Linear(out_dim, out_dim), nn.LayerNorm(out_dim))
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
    kind = "modular"
    # Parameters under this prefix are saved as the HF folder `lm/`, not in modules.safetensors.
    saved_elsewhere_prefix = "backbone.lm."

    def __init__(self, lm, tokenizer, encoders: dict[str, nn.Module] | None = None, *,
                 max_length: int = 1024, feature_cache: FeatureCache | None = None, label_tokens: bool = False):
        super().__init__()
        self.lm = lm
        self.tokenizer = tokenizer
        self.encoders = nn.ModuleDict(encoders or {})
        hidden = lm.config.hidden_size
        emb = lm.get_input_embeddings()
        scale = float(emb.weight.detach().float().std())
        self.projectors = nn.ModuleDict({m: Projector(e.out_dim, hidden, scale) for m, e in self.encoders.items()})
        # With `label_tokens`, media whose encoder has a pretrained classifier get one more token
        # after their feature tokens: the classifier's top classes as LM word embeddings.
        self.label_words = nn.ModuleDict({m: LabelWords(e.label_names, tokenizer, emb)
                                          for m, e in self.encoders.items() if label_tokens and e.label_names})
        self.max_length = max_length
        self.feature_cache = feature_cache or FeatureCache()

    @property
    def hidden_size(self) -> int:
        return self.lm.config.hidden_size

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders.keys())

    # ---- building inputs -------------------------------------------------------------------
    def render(self, conv: Conversation, *, add_generation_prompt: bool = False) -> tuple[str, list[Media]]:
        """Chat-template text with one sentinel per media item, and the media in order."""
        media: list[Media] = []
        messages = []
        for turn in conv:
            pieces = []
            for p in turn.parts:
                if isinstance(p, Media):
                    pieces.append(_SENTINEL.format(len(media)))
                    media.append(p)
                else:
                    pieces.append(p)
            messages.append({"role": turn.role, "content": "".join(pieces)})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)
        return text, media

    def _encoder_for(self, m: Media) -> str:
        name = ENCODER_FOR_MEDIA.get(m.type)
        if name not in self.encoders:
            raise ModelError(f"this model has no {m.type} encoder (it was built for "
                             f"{', '.join(self.modalities) or 'text only'}); retrain with a modality that "
                             f"includes {m.type}, e.g. modality=omni")
        return name

    def _tokens(self, text: str, media: list[Media]) -> list:
        """Token pieces: ints for text tokens, (encoder, tensor) for media spans."""
        out: list = []
        pos = 0
        for match in _SENTINEL_RE.finditer(text):
            out.extend(self.tokenizer(text[pos:match.start()], add_special_tokens=False)["input_ids"])
            m = media[int(match.group(1))]
            enc = self._encoder_for(m)
            encoder = self.encoders[enc]
            out.append((enc, self.feature_cache.get(encoder, Path(m.path))))
            if encoder.transcribes:
                words = TRANSCRIPT.format(self.feature_cache.text(encoder, Path(m.path)))
                out.extend(self.tokenizer(words, add_special_tokens=False)["input_ids"])
            pos = match.end()
        out.extend(self.tokenizer(text[pos:], add_special_tokens=False)["input_ids"])
        return out

    def span(self, enc: str) -> int:
        """Sequence positions one media item of encoder `enc` takes: its feature tokens (+ a label token)."""
        return self.encoders[enc].n_tokens + (enc in self.label_words)

    def _length(self, pieces: list) -> int:
        return sum(self.span(p[0]) if isinstance(p, tuple) else 1 for p in pieces)

    def collate(self, convs: list[Conversation], *, add_generation_prompt: bool = False,
                lm_target: bool = False, padding_side: str = "right") -> Batch:
        """Tokenise conversations, prepare media (cached), pad.

        With `lm_target`, the last turn (assistant) is the LM target: `labels` hold its tokens
        and -100 elsewhere.
        """
        seqs, labels_list = [], []
        for conv in convs:
            if lm_target:
                prefix_text, prefix_media = self.render(conv[:-1], add_generation_prompt=True)
                full_text, full_media = self.render(conv)
                if not full_text.startswith(prefix_text):
                    raise ModelError("the chat template does not extend the prompt with the answer; "
                                     "cannot build LM targets")
                prefix = self._tokens(prefix_text, prefix_media)
                rest_media = full_media[len(prefix_media):]
                rest_text = _renumber(full_text[len(prefix_text):], len(prefix_media))
                target = self._tokens(rest_text, rest_media)
                pieces = prefix + target
                lab = [-100] * self._length(prefix) + _target_labels(target, self.span)
            else:
                text, media = self.render(conv, add_generation_prompt=add_generation_prompt)
                pieces = self._tokens(text, media)
                lab = None
            pieces, lab = self._fit(pieces, lab)
            seqs.append(pieces)
            labels_list.append(lab)
        return self._pad(seqs, labels_list if lm_target else None, padding_side)

    def _fit(self, pieces: list, labels):
        """Drop text tokens from the middle of the sequence when it is longer than max_length."""
        excess = self._length(pieces) - self.max_length
        if excess <= 0:
            return pieces, labels
        # Keep the start (system/criteria) and the end (response, where the reward is read).
        text_idx = [i for i, p in enumerate(pieces) if not isinstance(p, tuple)]
        if len(text_idx) <= excess + 8:
            raise ModelError(f"a sequence of {self._length(pieces)} tokens does not fit max_length="
                             f"{self.max_length} even without its text; raise backbone.max_length")
        mid = len(text_idx) // 2
        drop = set(text_idx[mid - excess // 2: mid - excess // 2 + excess])
        # Map label positions (flattened over media tokens) alongside pieces.
        if labels is not None:
            keep_labels, cursor = [], 0
            for i, p in enumerate(pieces):
                n = self.span(p[0]) if isinstance(p, tuple) else 1
                if i not in drop:
                    keep_labels.extend(labels[cursor:cursor + n])
                cursor += n
            labels = keep_labels
        return [p for i, p in enumerate(pieces) if i not in drop], labels

    def _pad(self, seqs: list[list], labels_list, padding_side: str) -> Batch:
        lengths = [self._length(s) for s in seqs]
        L = max(lengths)
        B = len(seqs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((B, L), pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        labels = torch.full((B, L), -100, dtype=torch.long) if labels_list is not None else None
        feats: dict[str, list] = {}
        pos: dict[str, list] = {}
        for b, pieces in enumerate(seqs):
            off = L - lengths[b] if padding_side == "left" else 0
            t = off
            for p in pieces:
                if isinstance(p, tuple):
                    enc, value = p
                    n = self.span(enc)
                    feats.setdefault(enc, []).append(value)
                    pos.setdefault(enc, []).append((b, t))
                    t += n
                else:
                    input_ids[b, t] = p
                    t += 1
            mask[b, off:off + lengths[b]] = 1
            if labels is not None:
                labels[b, off:off + lengths[b]] = torch.tensor(labels_list[b], dtype=torch.long)
        last = torch.tensor([(L - 1) if padding_side == "left" else n - 1 for n in lengths])
        tensors = {"input_ids": input_ids, "attention_mask": mask, "last_index": last}
        if labels is not None:
            tensors["labels"] = labels
        media = {}
        for enc, values in feats.items():
            try:
                stacked = torch.stack(values)
            except RuntimeError as e:
                raise ModelError(f"{enc} encoder produced inputs of different shapes: {e}") from e
            media[enc] = {"x": stacked, "pos": torch.tensor(pos[enc], dtype=torch.long)}
        return Batch(tensors, {"media": media})

    def save_backbone(self, out: Path) -> None:
        """The LM (with tokenizer) as a plain HF folder `out/lm` that transformers loads as is."""
        lm_dir = Path(out) / "lm"
        self.lm.save_pretrained(lm_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(lm_dir)

    # ---- running ---------------------------------------------------------------------------
    def embed(self, batch: Batch) -> torch.Tensor:
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

    def forward(self, batch: Batch, *, need_logits: bool = False, need_hidden: bool = False) -> BackboneOutput:
        mask = batch.tensors["attention_mask"]
        embeds = self.embed(batch)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        decoder = self.lm.get_decoder()
        hs = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).last_hidden_state
        last = hs[torch.arange(hs.shape[0], device=hs.device), batch.tensors["last_index"]]
        logits = self.lm.get_output_embeddings()(hs) if need_logits else None
        return BackboneOutput(last_hidden=last, logits=logits, hidden=hs if need_hidden else None)

    @torch.no_grad()
    def generate(self, batch: Batch, **gen_kwargs) -> list[str]:
        """Continue left-padded prompts; returns the decoded new text of each."""
        embeds = self.embed(batch)
        out = self.lm.generate(inputs_embeds=embeds, attention_mask=batch.tensors["attention_mask"],
                               pad_token_id=self.tokenizer.pad_token_id, **gen_kwargs)
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)


def _renumber(text: str, offset: int) -> str:
    return _SENTINEL_RE.sub(lambda m: _SENTINEL.format(int(m.group(1)) - offset), text)


def _target_labels(pieces: list, span) -> list[int]:
    out: list[int] = []
    for p in pieces:
        if isinstance(p, tuple):
            out.extend([-100] * span(p[0]))
        else:
            out.append(p)
    return out


def conversation(system: str | None, user: list, assistant: list | None = None) -> Conversation:
    """Build a conversation from parts; empty strings are dropped."""
    conv: Conversation = []
    if system:
        conv.append(Turn("system", [system]))
    conv.append(Turn("user", [p for p in user if not (isinstance(p, str) and not p)]))
    if assistant is not None:
        conv.append(Turn("assistant", [p for p in assistant if not (isinstance(p, str) and not p)]))
    return conv

