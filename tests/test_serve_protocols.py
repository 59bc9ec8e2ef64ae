"""Request shapes without a model: chat templates split back, OpenRLHF queries, vLLM inputs, inline media."""

from __future__ import annotations

import base64
import io

import pytest

from omnireward.errors import RequestError, RequestTooLarge
from omnireward.serving.chat import parse_chat, split_templated, strip_end_markers
from omnireward.serving.media import MediaStore
from omnireward.serving.protocols import Context, openrlhf, vllm
from omnireward.serving.scale import RewardScale

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHATML = (
    f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n<|im_start|>user\nTell me about bees.<|im_end|>\n"
    "<|im_start|>assistant\nBees make honey.<|im_end|>\n"
)
LLAMA3 = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nTell me about bees.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nBees make honey.<|eot_id|>"
)


def test_chatml_and_llama3_parse_back_into_messages():
    assert [m["role"] for m in parse_chat(CHATML)] == ["system", "user", "assistant"]
    assert parse_chat(LLAMA3)[2] == {"role": "assistant", "content": "Bees make honey."}
    assert parse_chat("Tell me about bees. Bees make honey.") is None
    assert parse_chat("junk <|im_start|>user\nx<|im_end|>") is None  # text before the first turn
    # a generation prompt is an empty assistant turn; trailing end tokens are fine
    assert parse_chat("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")[-1] == {
        "role": "assistant",
        "content": "",
    }
    assert (
        parse_chat("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|><|endoftext|>")[-1]["content"]
        == "Yo"
    )


def test_template_default_system_is_dropped_and_other_system_turns_become_criteria():
    f = split_templated(CHATML, default_system=SMOL_SYSTEM)
    assert (f.prompt, f.response, f.criteria) == ("Tell me about bees.", "Bees make honey.", None)
    f = split_templated(CHATML, default_system=None)  # SmolLM2's default is a known policy default too
    assert f.criteria is None
    assert split_templated(CHATML, system_prompt_as_criteria="always").criteria == SMOL_SYSTEM
    assert split_templated(LLAMA3, system_prompt_as_criteria="never").criteria is None
    f = split_templated(LLAMA3)
    assert (f.prompt, f.response, f.criteria) == ("Tell me about bees.", "Bees make honey.", "Be brief.")
    multi = (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nTell me about bees.<|im_end|>\n<|im_start|>assistant\nThey buzz.<|im_end|>\n"
    )
    f = split_templated(multi)
    assert f.prompt == "User: Hi\n\nAssistant: Hello!\n\nUser: Tell me about bees." and f.response == "They buzz."


def test_end_markers_come_off_the_response_only_at_its_end():
    assert strip_end_markers(" Bees make honey.<|im_end|>\n<|endoftext|><|endoftext|>") == "Bees make honey."
    assert strip_end_markers("a </s> b</s>") == "a </s> b"


@pytest.mark.parametrize(
    "query,prompt,expected",
    [
        # the rule: prompt is a prefix of the query, the response is the rest
        ("Tell me about bees. Bees make honey.", "Tell me about bees.", ("Tell me about bees.", "Bees make honey.")),
        # a chat-templated prompt with a generation prompt, and the policy's EOS after the response
        (
            "<|im_start|>user\nTell me about bees.<|im_end|>\n<|im_start|>assistant\nBees make honey.<|im_end|>",
            "<|im_start|>user\nTell me about bees.<|im_end|>\n<|im_start|>assistant\n",
            ("Tell me about bees.", "Bees make honey."),
        ),
        # a BOS that decoding put in front of the prompt
        (
            "<s>Tell me about bees. Bees make honey.</s>",
            "Tell me about bees.",
            ("Tell me about bees.", "Bees make honey."),
        ),
        # no prompt: a templated query splits at its last assistant turn
        (LLAMA3, None, ("Tell me about bees.", "Bees make honey.")),
        # neither: the whole query is the response to an empty prompt
        ("Bees make honey.", "Something else", ("", "Bees make honey.")),
    ],
)
def test_openrlhf_queries_split_into_prompt_and_response(query, prompt, expected):
    p, r, _ = openrlhf.split_query(query, prompt)
    assert (p, r) == expected


def test_openrlhf_bad_bodies_name_the_field(tmp_path):
    lease = MediaStore(tmp_path).lease()
    ctx = Context(max_records=2)
    cases = [
        ({"prompts": ["a"]}, "query: missing"),
        ({"query": "x"}, "query: expected a list"),
        ({"query": ["a", 3]}, "query[1]: expected a string"),
        ({"query": ["a"], "prompts": ["a", "b"]}, "prompts: has 2 entries but query has 1"),
        ({"query": ["a"], "labels": "x"}, "labels: expected a list"),
    ]
    for body, needle in cases:
        with pytest.raises(RequestError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            openrlhf.parse(body, lease, ctx)
    with pytest.raises(RequestTooLarge, match="3 records is over the limit of 2"):
        openrlhf.parse({"query": ["a", "b", "c"]}, lease, ctx)


def test_openrlhf_scores_are_sigmoid_of_normalised_rewards():
    ctx = Context(scale=RewardScale.from_stats({"mean": 1.0, "std": 2.0, "n": 5}))
    out = openrlhf.respond([{"reward": 1.0}, {"reward": 5.0}], None, ctx)
    assert out["rewards"] == [1.0, 5.0]
    assert out["scores"] == pytest.approx([0.5, 1 / (1 + 2.718281828459045**-2)])
    assert out["extra_logs"]["reward_normalized"] == pytest.approx([0.0, 2.0])
    # no statistics: sigmoid of the raw reward
    assert openrlhf.respond([{"reward": 0.0}], None, Context())["scores"] == [0.5]


def _png() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[::8, ::8]).save(buf, format="PNG")
    return buf.getvalue()


def test_vllm_inputs_messages_and_media_parts(tmp_path):
    store = MediaStore(tmp_path)
    uri = "data:image/png;base64," + base64.b64encode(_png()).decode()
    (tmp_path / "cat.png").write_bytes(_png())
    with store.lease() as lease:
        parsed = vllm.parse(
            {"model": "m", "input": [CHATML, "plain text"], "activation": False},
            lease,
            Context(default_system=SMOL_SYSTEM),
        )
        assert parsed.extra == {"model": "m", "activation": False}
        a, b = parsed.records
        assert (a.prompt, a.response.text, a.criteria) == ("Tell me about bees.", "Bees make honey.", None)
        assert (b.prompt, b.response.text) == ("", "plain text")
        conv = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": uri}},
                    {"type": "text", "text": "What is shown?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "A person."},
                    {"type": "image_url", "image_url": {"url": "cat.png"}},
                ],
            },
        ]
        item = vllm.parse({"messages": conv}, lease, Context()).records[0]
        assert item.prompt == "What is shown?" and item.response.text == "A person."
        assert [m.type for m in item.prompt_media] == ["image"] and item.task == "text_image_to_image"
        assert item.response.media[0].path == str(tmp_path / "cat.png")
        assert open(item.prompt_media[0].path, "rb").read() == _png()
        # the default for /classify is vLLM's: sigmoid on a one-label output
        assert vllm.parse({"input": "x"}, lease, Context()).extra["activation"] is True
    bad = [
        ({"input": [[1, 2, 3]]}, "input[0]: token ids"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages: the last message must be the assistant"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}],
                    },
                    {"role": "assistant", "content": "x"},
                ]
            },
            "messages[0].content[0].image_url.url: the data: URI",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]},
                    {"role": "assistant", "content": "x"},
                ]
            },
            "does not fetch URLs",
        ),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"input": "x", "use_activation": "no"}, "use_activation: expected true or false"),
    ]
    for body, needle in bad:
        with store.lease() as lease, pytest.raises(RequestError) as e:
            vllm.parse(body, lease, Context())
        assert needle in str(e.value)


def test_media_store_limits_types_dedupes_and_evicts(tmp_path):
    png = _png()
    store = MediaStore(tmp_path, max_item_bytes=len(png) + 10, max_spool_bytes=len(png) + 10)
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    with store.lease() as a, store.lease() as b:
        m1, m2 = a.media("image", uri, "f"), b.media(None, uri, "f")
        assert m1 == m2 and m2.type == "image"  # one file per content
        with pytest.raises(RequestError, match="f: a image/png data: URI where audio is expected"):
            a.media("audio", uri, "f")
        with pytest.raises(RequestError, match="unsupported media type 'text/plain'"):
            a.media("image", "data:text/plain;base64,aGk=", "f")
        with pytest.raises(RequestError, match="only base64"):
            a.media("image", "data:image/png,abc", "f")
        with pytest.raises(RequestTooLarge, match="over the 0 MiB limit per item"):
            a.media("image", "data:image/png;base64," + base64.b64encode(png * 2).decode(), "f")
        with pytest.raises(RequestError, match="escapes the media root"):
            a.media("image", "../../etc/passwd", "f")
        # a held file is not evicted even past the spool limit
        other = a.raw(b"\x00" * 64, "audio", ".wav", "g")
        assert open(m1.path, "rb").read() == png
    # released and over the limit: the oldest file goes
    import os

    assert not os.path.exists(m1.path) and os.path.exists(other.path)
    store.close()
    assert not store.spool.exists() or store.spool != tmp_path


def test_vllm_input_audio_parts_are_spooled_as_wav(tmp_path):
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(1600, dtype="float32"), 16000, format="WAV")
    b64 = base64.b64encode(buf.getvalue()).decode()
    conv = [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}},
                {"type": "text", "text": "Transcribe."},
            ],
        },
        {"role": "assistant", "content": "Silence."},
    ]
    with MediaStore(tmp_path).lease() as lease:
        item = vllm.parse({"messages": conv}, lease, Context()).records[0]
        assert [m.type for m in item.prompt_media] == ["audio"] and item.prompt_media[0].path.endswith(".wav")
        assert item.task == "text_audio_to_text" and open(item.prompt_media[0].path, "rb").read() == buf.getvalue()
        conv[0]["content"][0]["input_audio"]["format"] = "aiff"
        with pytest.raises(RequestError, match=r"messages\[0\].content\[0\].input_audio.format: unknown audio format"):
            vllm.parse({"messages": conv}, lease, Context())


def test_templated_text_without_its_leading_bos_token_parses_like_the_whole():
    """verl 0.9.1 (verl/experimental/reward_loop/reward_loop.py, near lines 224-227) removes the reward
    tokenizer's bos_token from the start of the templated text before it posts to /classify. SmolLM2's
    bos_token is "<|im_start|>", so the first turn arrives without its opener; it must still read as
    the same conversation (it was scored as one response to an empty prompt, criteria lost)."""
    bos = "<|im_start|>"  # SmolLM2-135M-Instruct's tokenizer_config.json bos_token
    sent = CHATML[len(bos) :] if CHATML.startswith(bos) else CHATML
    assert sent.startswith("system\n")
    assert parse_chat(sent) == parse_chat(CHATML)
    assert split_templated(sent, default_system=SMOL_SYSTEM) == split_templated(CHATML, default_system=SMOL_SYSTEM)
    llama_bos = "<|begin_of_text|>"
    no_opener = LLAMA3[len(llama_bos) + len("<|start_header_id|>") :]
    assert parse_chat(no_opener) == parse_chat(LLAMA3)
    # Plain text that merely mentions a marker is still not a conversation.
    assert parse_chat("user\nsays hi <|im_start|> in passing") is None
    assert parse_chat("junk <|im_start|>user\nx<|im_end|>") is None
