"""Input preparation for the modular backbone: chat template, tokens, media features, padding.

Media are marked in the rendered chat text by private-use sentinels; each becomes a span of
positions that the backbone fills with projected encoder tokens (+ one label token where the
encoder has a classifier), followed as plain text by the item's descriptor line (with
`descriptor_tokens`) and a clip's transcript. Everything here runs on the CPU and may run in DataLoader workers.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from omnireward.backbones.base import Batch, Conversation
from omnireward.backbones.features import FeatureCache
from omnireward.backbones.packing import layout, pad_packed
from omnireward.data.records import Media
from omnireward.errors import ModelError

# Private-use code points: cannot collide with text a user writes in a prompt by accident.
_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")
# Words an encoder heard in a media item (a clip's transcript) follow its feature tokens as plain text.
TRANSCRIPT = ' Transcript: "{}"'
# Measured properties of a media item (encoders/descriptors.py) follow its feature tokens as plain text.
DESCRIPTOR = " {}"


class ModularProcessor:
    """Conversations → `Batch` for a `ModularBackbone`.

    `encoders` maps encoder name → encoder (only its CPU side is used here: `prepare`,
    `cache_key`, `n_tokens`); `label_token` names the encoders whose spans end in one label token.
    With `descriptor_tokens`, each media item's span is followed by its descriptor line in words.
    """

    def __init__(
        self,
        tokenizer,
        encoders: dict,
        *,
        label_token: set[str] | frozenset = frozenset(),
        max_length: int = 1024,
        feature_cache: FeatureCache | None = None,
        descriptor_tokens: bool = False,
    ):
        self._tokenizer = tokenizer
        self.encoders = dict(encoders)
        self.label_token = frozenset(label_token)
        self.max_length = max_length
        self.feature_cache = feature_cache or FeatureCache()
        self.descriptor_tokens = descriptor_tokens

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    # ---- rendering -------------------------------------------------------------------------
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
        text = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return text, media

    def _encoder_for(self, m: Media) -> str:
        name = m.type  # an encoder is keyed by the media type it reads (its `modality`)
        if name not in self.encoders:
            raise ModelError(
                f"this model has no {m.type} encoder (it was built for "
                f"{', '.join(self.modalities) or 'text only'}); retrain with a modality that "
                f"includes {m.type}, e.g. modality=omni"
            )
        return name

    def tokens(self, text: str, media: list[Media]) -> list:
        """Token pieces: ints for text tokens, (encoder, prepared tensor) for media spans."""
        out: list = []
        pos = 0
        for match in _SENTINEL_RE.finditer(text):
            out.extend(self._tokenizer(text[pos : match.start()], add_special_tokens=False)["input_ids"])
            m = media[int(match.group(1))]
            enc = self._encoder_for(m)
            encoder = self.encoders[enc]
            out.append((enc, self.feature_cache.get(encoder, Path(m.path))))
            if self.descriptor_tokens:
                line = self.feature_cache.descriptor(m.type, Path(m.path))
                out.extend(self._tokenizer(DESCRIPTOR.format(line), add_special_tokens=False)["input_ids"])
            if encoder.transcribes:
                heard = self.feature_cache.text(encoder, Path(m.path))
                if heard:  # a clip without speech has no transcript, not an empty one
                    out.extend(self._tokenizer(TRANSCRIPT.format(heard), add_special_tokens=False)["input_ids"])
            pos = match.end()
        out.extend(self._tokenizer(text[pos:], add_special_tokens=False)["input_ids"])
        return out

    def span(self, enc: str) -> int:
        """Sequence positions one media item of encoder `enc` takes: its feature tokens (+ a label token)."""
        return self.encoders[enc].n_tokens + (enc in self.label_token)

    def length(self, pieces: list) -> int:
        return sum(self.span(p[0]) if isinstance(p, tuple) else 1 for p in pieces)

    # ---- batching --------------------------------------------------------------------------
    def __call__(
        self,
        convs: list[Conversation],
        *,
        add_generation_prompt: bool = False,
        lm_target: bool = False,
        padding_side: str = "right",
        response_mask: bool = False,
    ) -> Batch:
        """Tokenise conversations, prepare media (cached), pad.

        With `lm_target`, the last turn (assistant) is the LM target: `labels` hold its tokens
        and -100 elsewhere. With `response_mask`, `response_mask` [B, L] marks the last (assistant)
        turn's positions, its media spans included (what a pooling head reads, heads/pooling.py).
        """
        if response_mask:
            if lm_target or add_generation_prompt:
                raise ModelError("response_mask marks an answer: it takes neither lm_target nor add_generation_prompt")
            seqs, flags_list = [], []
            for conv in convs:
                if not (conv and conv[-1].role == "assistant"):
                    raise ModelError("response_mask needs conversations that end in an assistant turn")
                prefix, answer = self.split(conv)
                pieces, flags = self._fit(prefix + answer, [0] * self.length(prefix) + [1] * self.length(answer))
                seqs.append(pieces)
                flags_list.append(flags)
            return self.pad(seqs, None, padding_side, flags_list=flags_list)
        seqs, labels_list = [], []
        for conv in convs:
            pieces, lab = self.pieces(conv, add_generation_prompt=add_generation_prompt, lm_target=lm_target)
            seqs.append(pieces)
            labels_list.append(lab)
        return self.pad(seqs, labels_list if lm_target else None, padding_side)

    def split(self, conv: Conversation) -> tuple[list, list]:
        """Token pieces of a conversation ending in an answer: the prompt up to the assistant header,
        and the answer. Both are tokenised on their own, so a packed pair (one prompt, two answers)
        has exactly the tokens of its two unshared sequences."""
        prefix_text, prefix_media = self.render(conv[:-1], add_generation_prompt=True)
        full_text, full_media = self.render(conv)
        if not full_text.startswith(prefix_text):
            raise ModelError(
                "the chat template does not extend the prompt with the answer; cannot split the prompt from the answer"
            )
        rest_text = _renumber(full_text[len(prefix_text) :], len(prefix_media))
        return self.tokens(prefix_text, prefix_media), self.tokens(rest_text, full_media[len(prefix_media) :])

    def pieces(
        self, conv: Conversation, *, add_generation_prompt: bool = False, lm_target: bool = False
    ) -> tuple[list, list[int] | None]:
        """One conversation's token pieces (fitted to max_length) and, with `lm_target`, its labels."""
        if conv and conv[-1].role == "assistant" and not add_generation_prompt:
            prefix, target = self.split(conv)
            pieces = prefix + target
            lab = [-100] * self.length(prefix) + self._target_labels(target) if lm_target else None
        else:
            if lm_target:
                raise ModelError("LM targets need a conversation that ends in an assistant turn")
            text, media = self.render(conv, add_generation_prompt=add_generation_prompt)
            pieces, lab = self.tokens(text, media), None
        return self._fit(pieces, lab)

    def pack(self, groups: list[list[Conversation]]) -> Batch | None:
        """Each group's conversations (one prompt, different answers) as one packed sequence
        (see backbones/packing.py); None when a sequence would need cutting to fit max_length."""
        rows, flat = [], []
        for convs in groups:
            prefix, _ = self.split(convs[0])
            rests = [self.split(c)[1] for c in convs]
            p, lens = self.length(prefix), [self.length(r) for r in rests]
            if p + max(lens) > self.max_length:
                return None
            seg, pos, ends = layout(p, lens)
            rows.append({"seg": seg, "pos": pos, "ends": ends})
            flat.append(prefix + [x for r in rests for x in r])
        batch = self.pad(flat)
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        packed = pad_packed(rows, pad_id, max(len(g) for g in groups))
        packed["input_ids"] = batch.tensors["input_ids"]
        return Batch(packed, batch.extra)

    def _target_labels(self, pieces: list) -> list[int]:
        out: list[int] = []
        for p in pieces:
            out.extend([-100] * self.span(p[0]) if isinstance(p, tuple) else [p])
        return out

    def _fit(self, pieces: list, labels):
        """Drop text tokens from the middle of the sequence when it is longer than max_length."""
        excess = self.length(pieces) - self.max_length
        if excess <= 0:
            return pieces, labels
        # Keep the start (system/criteria) and the end (response, where the reward is read).
        text_idx = [i for i, p in enumerate(pieces) if not isinstance(p, tuple)]
        if len(text_idx) <= excess + 8:
            raise ModelError(
                f"a sequence of {self.length(pieces)} tokens does not fit max_length="
                f"{self.max_length} even without its text; raise backbone.max_length"
            )
        mid = len(text_idx) // 2
        drop = set(text_idx[mid - excess // 2 : mid - excess // 2 + excess])
        if labels is not None:  # label positions are flattened over media spans
            keep_labels, cursor = [], 0
            for i, p in enumerate(pieces):
                n = self.span(p[0]) if isinstance(p, tuple) else 1
                if i not in drop:
                    keep_labels.extend(labels[cursor : cursor + n])
                cursor += n
            labels = keep_labels
        return [p for i, p in enumerate(pieces) if i not in drop], labels

    def pad(self, seqs: list[list], labels_list=None, padding_side: str = "right", flags_list=None) -> Batch:
        """Pad token pieces into a Batch; media spans become `extra["media"][enc] = {x, pos}`.
        `flags_list` (0/1 per position, as labels are) becomes the `response_mask` tensor."""
        lengths = [self.length(s) for s in seqs]
        L = max(lengths)
        B = len(seqs)
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((B, L), pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        labels = torch.full((B, L), -100, dtype=torch.long) if labels_list is not None else None
        flags = torch.zeros((B, L), dtype=torch.bool) if flags_list is not None else None
        feats: dict[str, list] = {}
        pos: dict[str, list] = {}
        for b, pieces in enumerate(seqs):
            off = L - lengths[b] if padding_side == "left" else 0
            t = off
            for p in pieces:
                if isinstance(p, tuple):
                    enc, value = p
                    feats.setdefault(enc, []).append(value)
                    pos.setdefault(enc, []).append((b, t))
                    t += self.span(enc)
                else:
                    input_ids[b, t] = p
                    t += 1
            mask[b, off : off + lengths[b]] = 1
            if labels is not None:
                labels[b, off : off + lengths[b]] = torch.tensor(labels_list[b], dtype=torch.long)
            if flags is not None:
                flags[b, off : off + lengths[b]] = torch.tensor(flags_list[b], dtype=torch.bool)
        last = torch.tensor([(L - 1) if padding_side == "left" else n - 1 for n in lengths])
        tensors = {"input_ids": input_ids, "attention_mask": mask, "last_index": last}
        if labels is not None:
            tensors["labels"] = labels
        if flags is not None:
            tensors["response_mask"] = flags
        media = {}
        for enc, values in feats.items():
            try:
                stacked = torch.stack(values)
            except RuntimeError as e:
                raise ModelError(f"{enc} encoder produced inputs of different shapes: {e}") from e
            media[enc] = {"x": stacked, "pos": torch.tensor(pos[enc], dtype=torch.long)}
        return Batch(tensors, {"media": media})


def _renumber(text: str, offset: int) -> str:
    return _SENTINEL_RE.sub(lambda m: _SENTINEL.format(int(m.group(1)) - offset), text)
