"""Prefix sharing: a prompt and its N responses packed into one sequence with a block attention mask.

The responses of a pair (or a group) share everything before the assistant's answer — criteria,
prompt, prompt media. Packed as `prefix, response_1, ..., response_N`, each response attends to
the prefix and to itself only, and its positions continue from the prefix as if it stood alone,
so each response's hidden states equal those of its own unshared sequence while the prefix is
computed once (and, in training, gets the gradients of every response).

A packed batch's tensors: `input_ids` [B, L], `attention_mask` [B, L] (1 for real tokens),
`segment_ids` [B, L] (0 prefix, k for response k, -1 padding), `position_ids` [B, L] and
`reward_index` [N, B] (the last token of response k of group b; -1 where a group has fewer).
"""

from __future__ import annotations

import torch


def block_mask(segment_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention mask [B, 1, L, L]: 0 where query i may see key j, the dtype's minimum elsewhere.

    i sees j when j <= i, j is real, and j is in the prefix or in i's own response.
    """
    L = segment_ids.shape[1]
    seg_q, seg_k = segment_ids[:, :, None], segment_ids[:, None, :]
    causal = torch.ones((L, L), dtype=torch.bool, device=segment_ids.device).tril()
    allowed = causal & (seg_k >= 0) & ((seg_k == 0) | (seg_k == seg_q))
    # Padding queries see the first token, so no row is all -inf (their outputs are never read).
    allowed[:, :, 0] |= seg_q[:, :, 0] < 0
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment_ids.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def layout(prefix_len: int, response_lens: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Segment ids, position ids and reward indices of one packed group."""
    seg = [0] * prefix_len
    pos = list(range(prefix_len))
    ends = []
    for k, n in enumerate(response_lens, 1):
        seg += [k] * n
        pos += list(range(prefix_len, prefix_len + n))
        ends.append(len(seg) - 1)
    return seg, pos, ends


def pad_packed(rows: list[dict], pad_id: int, n_max: int) -> dict[str, torch.Tensor]:
    """Right-pad packed groups ({ids, seg, pos, ends}) into the packed batch tensors."""
    B, L = len(rows), max(len(r["seg"]) for r in rows)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    seg = torch.full((B, L), -1, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    reward_index = torch.full((n_max, B), -1, dtype=torch.long)
    for b, r in enumerate(rows):
        n = len(r["seg"])
        if r.get("ids") is not None:
            input_ids[b, :n] = torch.tensor(r["ids"], dtype=torch.long)
        seg[b, :n] = torch.tensor(r["seg"], dtype=torch.long)
        pos[b, :n] = torch.tensor(r["pos"], dtype=torch.long)
        for k, e in enumerate(r["ends"]):
            reward_index[k, b] = e
    return {
        "input_ids": input_ids,
        "attention_mask": (seg >= 0).long(),
        "segment_ids": seg,
        "position_ids": pos,
        "reward_index": reward_index,
    }


def gather_rewards_hidden(hidden: torch.Tensor, reward_index: torch.Tensor) -> torch.Tensor:
    """Hidden states at the packed reward positions, response-major: [N·B (present ones), H]."""
    N, B = reward_index.shape
    b = torch.arange(B, device=hidden.device).repeat(N)
    idx = reward_index.reshape(-1)
    keep = idx >= 0
    return hidden[b[keep], idx[keep]]
