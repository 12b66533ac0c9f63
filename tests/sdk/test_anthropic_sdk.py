"""The official `anthropic` SDK against the real modelgate binary, to the
mock, to an OpenAI-compatible upstream (translated) and to an Anthropic
upstream (pass-through)."""

import json

import anthropic
import openai
import pytest

from conftest import CLIENT_TOKEN, UPSTREAM_SECRET

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway, api_key=CLIENT_TOKEN, max_retries=0)


def user(text):
    return [{"role": "user", "content": text}]


def test_message_from_the_default_mock(client):
    message = client.messages.create(model="default", max_tokens=64, system="be brief", messages=user("Hello Claude SDK"))
    assert message.content[0].text == "Hello Claude SDK"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 5
    assert message.usage.output_tokens == 3


def test_streaming_from_the_default_mock(client):
    with client.messages.stream(model="default", max_tokens=64, messages=user("stream these words")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["stream ", "these ", "words"]
    assert final.content[0].text == "stream these words"
    assert final.usage.input_tokens == 3
    assert final.usage.output_tokens == 3


def test_bearer_auth_works_too(gateway):
    client = anthropic.Anthropic(base_url=gateway, auth_token=CLIENT_TOKEN, max_retries=0)
    message = client.messages.create(model="default", max_tokens=8, messages=user("bearer"))
    assert message.content[0].text == "bearer"


def test_tool_round_trip_with_the_mock(client):
    messages = user("Oslo")
    first = client.messages.create(
        model="mock/echo", max_tokens=64, messages=messages, tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use"
    assert call.input == {"city": "Oslo"}
    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 C"}]},
    ]
    second = client.messages.create(model="mock/echo", max_tokens=64, messages=messages, tools=[WEATHER_TOOL])
    assert second.content[0].text == "tool get_weather returned: 12 C"


def test_translated_to_an_openai_upstream(client, upstream):
    upstream.clear()
    message = client.messages.create(model="fast", max_tokens=32, system="sys", messages=user("via openai"))
    assert message.content[0].text == "echo: via openai"
    assert message.usage.input_tokens == 3
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-test-upstream"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "sys"}
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_SECRET}"


def test_streamed_tool_calls_translated_from_openai_keep_their_input(client):
    # Regression guard for gateways that deliver `input: {}` in translated
    # streams while the non-streamed call works.
    with client.messages.stream(
        model="up/parallel",
        max_tokens=64,
        messages=user("Lima"),
        tools=[WEATHER_TOOL, {"name": "get_time", "input_schema": {"type": "object"}}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content] == [
        ("get_weather", {"input": "Lima", "n": 0}),
        ("get_time", {"input": "Lima", "n": 1}),
    ]
    assert final.usage.input_tokens == 1


def test_pass_through_to_an_anthropic_upstream(client, upstream):
    upstream.clear()
    message = client.messages.create(model="claude/sonnet", max_tokens=16, messages=user("native"))
    assert message.id.startswith("msg_mock_")
    assert message.content[0].text == "echo: native"
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["model"] == "claude-test-upstream"
    assert sent["headers"]["x-api-key"] == UPSTREAM_SECRET
    assert CLIENT_TOKEN not in json.dumps(sent["headers"])
    with client.messages.stream(model="claude/sonnet", max_tokens=16, messages=user("a b")) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "echo: a b"
    assert final.usage.output_tokens == 3


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.messages.create(model="claude-nope", max_tokens=8, messages=user("x"))
    assert "unknown model 'claude-nope'" in raised.value.message


@pytest.mark.parametrize(
    "model, exception, status",
    [
        ("up/error-429", anthropic.RateLimitError, 429),
        ("up/error-500", anthropic.InternalServerError, 502),
        ("claude/error-429", anthropic.RateLimitError, 429),
        ("claude/error-500", anthropic.InternalServerError, 500),
    ],
)
def test_upstream_failures_raise_the_matching_exception(client, model, exception, status):
    with pytest.raises(exception) as raised:
        client.messages.create(model=model, max_tokens=8, messages=user("x"))
    assert raised.value.status_code == status
    assert "mock upstream failure" in raised.value.message


def test_mid_stream_failure_raises(client):
    with pytest.raises(anthropic.APIStatusError) as raised:
        with client.messages.stream(model="up/midstream-error", max_tokens=8, messages=user("a b c")) as stream:
            for _ in stream:
                pass
    assert "mock upstream broke mid-stream" in str(raised.value)


def test_openai_sdk_to_an_anthropic_backend(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=CLIENT_TOKEN, max_retries=0)
    completion = client.chat.completions.create(
        model="claude/sonnet", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "from openai"}]
    )
    assert completion.choices[0].message.content == "echo: from openai"
    assert completion.usage.prompt_tokens == 3
    stream = client.chat.completions.create(
        model="claude/sonnet",
        messages=[{"role": "user", "content": "streamed words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: streamed words"
    assert chunks[-1].usage.completion_tokens == 3


def test_anthropic_sdk_to_a_gemini_backend(client, upstream):
    upstream.clear()
    message = client.messages.create(model="gem/flash", max_tokens=16, system="sys", messages=user("to gemini"))
    assert message.content[0].text == "echo: to gemini"
    assert message.usage.input_tokens == 3
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1beta/models/gemini-test-upstream:generateContent"
    assert sent["body"]["systemInstruction"] == {"parts": [{"text": "sys"}]}
    with client.messages.stream(
        model="gem/parallel", max_tokens=16, messages=user("Lima"), tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content] == [
        ("get_weather", {"input": "Lima", "n": 0}),
        ("get_weather", {"input": "Lima", "n": 1}),
    ]
