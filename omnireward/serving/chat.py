"""One conversation reader for every route and hook: templated text, message lists, plain text.

RL frameworks hand the reward model text that a chat template already wrapped: OpenRLHF sends
the policy's decoded prompt + response, verl applies the reward model's own template before it
posts to `/classify` (and strips the tokenizer's `bos_token` from its start), TRL passes
standard-format prompts that a dataset may already have templated. The reward model applies its
own template again, so the markers must come off first. Read here:

    ChatML       <|im_start|>role\\n ... <|im_end|>        Qwen2/2.5/3, SmolLM2 (also role<|im_sep|>: Phi-4)
    Llama 3      <|start_header_id|>role<|end_header_id|>\\n\\n ... <|eot_id|>
    Gemma        <start_of_turn>user\\n ... <end_of_turn>   (role "model" is the assistant)
    Mistral      [INST] ... [/INST] answer</s>             (and [SYSTEM_PROMPT] ... [/SYSTEM_PROMPT])
    Phi-3        <|user|>\\n ... <|end|>

with or without a leading bos token (`<|begin_of_text|>`, `<s>`, `<bos>`), and with the first
turn's opener missing (SmolLM2's bos_token is `<|im_start|>` itself, so verl's strip takes it).
Other text is plain text.

Messages map onto a native record the way `omnireward.prompts.reward_conversation` builds its
conversation, so a single-turn chat re-renders to the text that was sent: system turns →
`criteria`, the user turn → `prompt` (earlier turns → a transcript), the last assistant turn →
the response. Which system turns are criteria is `system_prompt_as_criteria`:

    auto    (default) a policy family's default system prompt (KNOWN_DEFAULT_SYSTEMS, the Llama 3.x
            date preamble) and the reward model's own default are not criteria; other system
            turns are
    always  every system turn is criteria, as written
    never   no system turn is criteria
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omnireward.data.formats.common import render_transcript
from omnireward.errors import ConfigError, RequestError

SYSTEM_PROMPT_MODES = ("auto", "always", "never")

# Default system prompts that chat templates insert by themselves when a conversation has none.
# A policy's own default says nothing about what the reward model should prefer.
#   Qwen2.5-*-Instruct tokenizer_config.json chat_template: "You are Qwen, created by Alibaba Cloud.
#     You are a helpful assistant." (Qwen3's template inserts none.)
#   Qwen2-*-Instruct, Qwen2-VL, Qwen2.5-VL chat_template: "You are a helpful assistant." (also the
#     system prompt Phi-3/3.5/4 model cards show; the Phi templates insert none).
#   SmolLM2-*-Instruct chat_template: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#   Llama 3.1/3.2/3.3-Instruct chat_template: a system turn that always starts "Cutting Knowledge
#     Date: December 2023\nToday Date: 26 Jul 2024\n\n" (see _LLAMA_PREAMBLE), then the user's system text.
#   Mistral-Small-24B-Instruct-2501 chat_template: "You are Mistral Small 3, a Large Language Model (LLM)
#     created by Mistral AI, ..." followed by the date and guidance (matched by its first sentence);
#     Mistral 7B v0.1-v0.3 and Gemma 2/3 templates insert no system prompt (Gemma has no system turn).
KNOWN_DEFAULT_SYSTEMS = (
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    "You are a helpful assistant.",
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    "You are a helpful AI assistant.",
)
KNOWN_DEFAULT_SYSTEM_PREFIXES = ("You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI",)
_LLAMA_PREAMBLE = re.compile(
    r"(?:Environment: ipython\n)?(?:Tools: [^\n]*\n\n)?"
    r"Cutting Knowledge Date: [^\n]*\nToday Date: [^\n]*\n\n?"
)

_CHATML = re.compile(r"<\|im_start\|>(\w+)(?:\n|<\|im_sep\|>)(.*?)(?:<\|im_end\|>\n?|(?=<\|im_start\|>)|\Z)", re.DOTALL)
_LLAMA3 = re.compile(
    r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)"
    r"(?:<\|eot_id\|>|(?=<\|start_header_id\|>)|\Z)",
    re.DOTALL,
)
_GEMMA = re.compile(r"<start_of_turn>(\w+)\n(.*?)(?:<end_of_turn>\n?|(?=<start_of_turn>)|\Z)", re.DOTALL)
_PHI3 = re.compile(
    r"<\|(system|user|assistant)\|>\n?(.*?)(?:<\|end\|>\n?|(?=<\|(?:system|user|assistant)\|>)|\Z)", re.DOTALL
)
_MISTRAL_SYSTEM = re.compile(r"\[SYSTEM_PROMPT\](.*?)\[/SYSTEM_PROMPT\]", re.DOTALL)
_MISTRAL_TURN = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(?:</s>|(?=\[INST\])|\Z)", re.DOTALL)

# (turn pattern, opener of a turn, role head that follows the opener: for a first turn whose
# opener went with the bos_token)
_FORMATS = (
    (_CHATML, "<|im_start|>", re.compile(r"(system|user|assistant)(?:\n|<\|im_sep\|>)")),
    (_LLAMA3, "<|start_header_id|>", re.compile(r"(system|user|assistant)<\|end_header_id\|>\n\n")),
    (_GEMMA, "<start_of_turn>", re.compile(r"(user|model)\n")),
    (_PHI3, "<|", None),
)
_ROLES = {"model": "assistant"}
# End-of-turn / end-of-text markers that a decoded response may still carry at its end.
END_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "</s>",
    "<|end|>",
    "<eos>",
    "<end_of_turn>",
    "<|eom_id|>",
)
_BOS = ("<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>")
_EMPTY_THINK = re.compile(r"\A\s*<think>\s*</think>\s*")  # Qwen3 with enable_thinking=False


@dataclass
class ChatFields:
    """What a chat contributes to a native record."""

    prompt: str
    response: str | None
    criteria: str | None


def check_mode(mode: str, field: str = "system_prompt_as_criteria") -> str:
    if mode not in SYSTEM_PROMPT_MODES:
        raise ConfigError(f"must be one of {', '.join(SYSTEM_PROMPT_MODES)}, got {mode!r}", field=field)
    return mode


def _strip_bos(text: str) -> str:
    text = text.lstrip()
    changed = True
    while changed:
        changed = False
        for b in _BOS:
            if text.startswith(b):
                text = text[len(b) :].lstrip()
                changed = True
    return text


def parse_chat(text: str) -> list[dict] | None:
    """The messages of chat-templated text (`None` when it is not a clean rendering of a known format).

    A trailing header without content (a generation prompt) becomes an empty assistant turn.
    """
    stripped = _strip_bos(text)
    if "[INST]" in stripped and stripped.startswith(("[INST]", "[SYSTEM_PROMPT]")):
        return _parse_mistral(stripped)
    for pattern, opener, head in _FORMATS:
        body = stripped
        if pattern is _PHI3:
            if not _PHI3.match(body):
                continue
        elif not body.startswith(opener):
            # verl (0.9.1 reward_loop.py, lines 224-227) strips the reward tokenizer's bos_token from
            # the templated text before posting to /classify; SmolLM2's bos_token is "<|im_start|>"
            # itself, so the first turn arrives without its opener ("system\n...<|im_end|>\n<|im_start|>user...").
            if opener in body and head.match(body):
                body = opener + body
            else:
                continue
        messages, end = [], 0
        for m in pattern.finditer(body):
            if m.start() != end:  # text between turns: not a clean rendering of this format
                return None
            messages.append({"role": _ROLES.get(m.group(1), m.group(1)), "content": m.group(2)})
            end = m.end()
        if messages and strip_end_markers(body[end:]) == "":
            return messages
        return None
    return None


def _parse_mistral(text: str) -> list[dict] | None:
    messages, pos = [], 0
    m = _MISTRAL_SYSTEM.match(text)
    if m:
        messages.append({"role": "system", "content": m.group(1)})
        pos = m.end()
    for m in _MISTRAL_TURN.finditer(text, pos):
        if m.start() != pos:
            return None
        messages.append({"role": "user", "content": m.group(1)})
        messages.append({"role": "assistant", "content": m.group(2)})
        pos = m.end()
    if len(messages) < 2 or strip_end_markers(text[pos:]) != "":
        return None
    return messages


def strip_end_markers(text: str) -> str:
    """`text` without trailing end-of-turn markers and surrounding whitespace."""
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for marker in END_MARKERS:
            if text.endswith(marker):
                text = text[: -len(marker)].rstrip()
                changed = True
    return text


def response_text(text: str) -> str:
    """A decoded response: without end-of-turn markers and an empty leading think block."""
    return strip_end_markers(_EMPTY_THINK.sub("", text, count=1))


def is_default_system(text: str, default_system: str | None = None) -> bool:
    """Whether a system turn is a template's own default (a known policy family's, or the reward model's)."""
    text = text.strip()
    return (
        text == (default_system or "").strip()
        or text in KNOWN_DEFAULT_SYSTEMS
        or text.startswith(KNOWN_DEFAULT_SYSTEM_PREFIXES)
    )


def system_criteria(text: str, default_system: str | None, mode: str) -> str | None:
    """What one system turn contributes as criteria under `mode`."""
    if mode == "never":
        return None
    if mode == "always":
        return text.strip() or None
    text = _LLAMA_PREAMBLE.sub("", text.lstrip(), count=1).strip()
    if not text or is_default_system(text, default_system):
        return None
    return text


def fields_from_messages(
    messages: list[dict],
    *,
    default_system: str | None = None,
    has_response: bool = True,
    system_prompt_as_criteria: str = "auto",
) -> ChatFields:
    """Record fields from text messages; with `has_response`, the last assistant turn is the response."""
    msgs = [dict(m) for m in messages]
    response = None
    if has_response:
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError("the last message is not an assistant turn")
        response = response_text(msgs.pop()["content"])
    elif msgs and msgs[-1]["role"] == "assistant" and not _EMPTY_THINK.sub("", msgs[-1]["content"]).strip():
        msgs.pop()  # a generation prompt
    systems = [
        system_criteria(m["content"], default_system, system_prompt_as_criteria) for m in msgs if m["role"] == "system"
    ]
    turns = [m for m in msgs if m["role"] != "system"]
    if len(turns) == 1 and turns[0]["role"] == "user":
        prompt = turns[0]["content"].strip()
    else:
        prompt = render_transcript([{"role": m["role"], "content": m["content"].strip()} for m in turns])
    return ChatFields(prompt=prompt, response=response, criteria="\n\n".join(s for s in systems if s) or None)


def split_templated(
    text: str, *, default_system: str | None = None, system_prompt_as_criteria: str = "auto"
) -> ChatFields | None:
    """Fields of a whole chat-templated conversation (prompt and response), or None if not one."""
    messages = parse_chat(text)
    if not messages or messages[-1]["role"] != "assistant":
        return None
    return fields_from_messages(
        messages, default_system=default_system, system_prompt_as_criteria=system_prompt_as_criteria
    )


def prompt_fields(
    text: str, *, default_system: str | None = None, system_prompt_as_criteria: str = "auto"
) -> ChatFields:
    """Fields of a prompt that may be chat-templated with a generation prompt at its end."""
    messages = parse_chat(text)
    if messages is None:
        return ChatFields(prompt=_strip_bos(text).strip(), response=None, criteria=None)
    return fields_from_messages(
        messages, default_system=default_system, has_response=False, system_prompt_as_criteria=system_prompt_as_criteria
    )


def conversation_fields(
    prompt: Any,
    response: Any = None,
    *,
    default_system: str | None = None,
    system_prompt_as_criteria: str = "auto",
    field: str = "prompt",
    response_field: str = "completion",
) -> ChatFields:
    """The one reader the hooks share: a prompt (plain or templated text, or messages) and a response
    (text, possibly with end markers, or assistant messages). Without `response`, `prompt` must be a
    whole conversation whose last turn is the assistant's."""
    # deferred: breaks the circle serving -> serving.service -> serving.chat -> integrations.inputs -> serving.media
    from omnireward.integrations.inputs import text_messages

    mode = system_prompt_as_criteria
    if response is None:
        if isinstance(prompt, str):
            fields = split_templated(prompt, default_system=default_system, system_prompt_as_criteria=mode)
            return fields or ChatFields(prompt="", response=response_text(prompt), criteria=None)
        msgs = text_messages(prompt, field)
        if not msgs or msgs[-1]["role"] != "assistant":
            raise RequestError("the last message must be the assistant's response", field=field)
        return fields_from_messages(msgs, default_system=default_system, system_prompt_as_criteria=mode)
    if isinstance(prompt, str):
        fields = prompt_fields(prompt, default_system=default_system, system_prompt_as_criteria=mode)
    else:
        fields = fields_from_messages(
            text_messages(prompt, field),
            default_system=default_system,
            has_response=False,
            system_prompt_as_criteria=mode,
        )
    if isinstance(response, str):
        text = response_text(response)
    else:
        text = response_text(
            "".join(m["content"] for m in text_messages(response, response_field) if m["role"] == "assistant")
        )
    return ChatFields(prompt=fields.prompt, response=text, criteria=fields.criteria)
