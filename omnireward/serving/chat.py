"""Chat-templated text back into messages, and messages into the fields of a native record.

RL frameworks hand the reward model text that a chat template already wrapped: OpenRLHF sends
the policy's decoded prompt + response, verl applies the reward model's own template before it
posts to `/classify`. The reward model applies its template again, so the markers must come off
first. ChatML (`<|im_start|>role ... <|im_end|>`: Qwen, SmolLM2) and Llama 3
(`<|start_header_id|>role<|end_header_id|> ... <|eot_id|>`) are read; other text is left as it is.

Messages map onto a native record the way `omnireward.prompts.reward_conversation` builds its
conversation, so a single-turn chat re-renders to the text that was sent: system turns →
`criteria`, the user turn → `prompt` (earlier turns → a transcript), the last assistant turn →
the response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>\n?|(?=<\|im_start\|>)|\Z)", re.DOTALL)
_LLAMA3 = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)"
                     r"(?:<\|eot_id\|>|(?=<\|start_header_id\|>)|\Z)", re.DOTALL)
_FORMATS = ((_CHATML, "<|im_start|>"), (_LLAMA3, "<|start_header_id|>"))
# End-of-turn / end-of-text markers that a decoded response may still carry at its end.
END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<|end|>", "<eos>",
               "<end_of_turn>")
_BOS = ("<|begin_of_text|>", "<s>", "<bos>")


@dataclass
class ChatFields:
    """What a chat contributes to a native record."""

    prompt: str
    response: str | None
    criteria: str | None


def parse_chat(text: str) -> list[dict] | None:
    """The messages of ChatML or Llama 3 text (`None` when it is neither).

    A trailing header without content (a generation prompt) becomes an empty assistant turn.
    """
    stripped = text.lstrip()
    for b in _BOS:
        if stripped.startswith(b):
            stripped = stripped[len(b):].lstrip()
    for pattern, opener in _FORMATS:
        if not stripped.startswith(opener):
            # verl (0.9.1 reward_loop.py) strips the reward tokenizer's bos_token from the templated
            # text before posting to /classify; SmolLM2's bos_token is "<|im_start|>" itself, so the
            # first turn arrives without its opener ("system\n...<|im_end|>\n<|im_start|>user...").
            if opener in stripped and _first_turn_without_opener(stripped, opener):
                stripped = opener + stripped
            else:
                continue
        messages, end = [], 0
        for m in pattern.finditer(stripped):
            if m.start() != end:  # text between turns: not a clean rendering of this format
                return None
            messages.append({"role": m.group(1), "content": m.group(2)})
            end = m.end()
        if messages and strip_end_markers(stripped[end:]) == "":
            return messages
    return None


_ROLE_HEAD = {"<|im_start|>": re.compile(r"(system|user|assistant)\n"),
              "<|start_header_id|>": re.compile(r"(system|user|assistant)<\|end_header_id\|>\n\n")}


def _first_turn_without_opener(text: str, opener: str) -> bool:
    """Whether `text` is a rendering of this format whose first turn lost only its opener."""
    return _ROLE_HEAD[opener].match(text) is not None


def strip_end_markers(text: str) -> str:
    """`text` without trailing end-of-turn markers and surrounding whitespace."""
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for marker in END_MARKERS:
            if text.endswith(marker):
                text = text[:-len(marker)].rstrip()
                changed = True
    return text


def fields_from_messages(messages: list[dict], *, default_system: str | None = None,
                         has_response: bool = True) -> ChatFields:
    """Record fields from text messages; with `has_response`, the last assistant turn is the response.

    A system turn equal to the reward model's template default (which the template inserts by
    itself) is dropped, so it does not turn into criteria.
    """
    msgs = [dict(m) for m in messages]
    response = None
    if has_response:
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError("the last message is not an assistant turn")
        response = strip_end_markers(msgs.pop()["content"])
    elif msgs and msgs[-1]["role"] == "assistant" and not msgs[-1]["content"].strip():
        msgs.pop()  # a generation prompt
    systems = [m["content"].strip() for m in msgs if m["role"] == "system"]
    systems = [s for s in systems if s and s != (default_system or "").strip()]
    turns = [m for m in msgs if m["role"] != "system"]
    if len(turns) == 1 and turns[0]["role"] == "user":
        prompt = turns[0]["content"].strip()
    else:
        from omnireward.data.formats.common import render_transcript

        prompt = render_transcript([{"role": m["role"], "content": m["content"].strip()} for m in turns])
    return ChatFields(prompt=prompt, response=response, criteria="\n\n".join(systems) or None)


def split_templated(text: str, *, default_system: str | None = None) -> ChatFields | None:
    """Fields of a whole chat-templated conversation (prompt and response), or None if not one."""
    messages = parse_chat(text)
    if not messages or messages[-1]["role"] != "assistant":
        return None
    return fields_from_messages(messages, default_system=default_system)


def prompt_fields(text: str, *, default_system: str | None = None) -> ChatFields:
    """Fields of a prompt that may be chat-templated with a generation prompt at its end."""
    messages = parse_chat(text)
    if messages is None:
        return ChatFields(prompt=text.strip(), response=None, criteria=None)
    return fields_from_messages(messages, default_system=default_system, has_response=False)
