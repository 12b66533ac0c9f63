"""Each official SDK against an Ollama backend (always translated): text,
streaming, and tool calls whose made-up ids pair the results back."""

import anthropic
import openai
from google import genai
from google.genai import types

from conftest import CLIENT_TOKEN


def test_openai_sdk(gateway, upstream):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=CLIENT_TOKEN, max_retries=0)
    completion = client.chat.completions.create(model="local/llama", messages=[{"role": "user", "content": "hi llama"}])
    assert completion.choices[0].message.content == "echo: hi llama"
    assert completion.usage.prompt_tokens == 2
    stream = client.chat.completions.create(
        model="local/llama", messages=[{"role": "user", "content": "a b"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert chunks[-1].usage.completion_tokens == 3

    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    messages = [{"role": "user", "content": "Oslo"}]
    first = client.chat.completions.create(model="local/parallel", messages=messages, tools=[tool])
    calls = first.choices[0].message.tool_calls
    assert len(calls) == 2 and calls[0].id != calls[1].id
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"r{i}"} for i, c in enumerate(calls)]
    upstream.clear()
    second = client.chat.completions.create(model="local/parallel", messages=messages, tools=[tool])
    assert second.choices[0].message.content == "tool result was: r0 | r1"
    sent = upstream.requests()[-1]["body"]["messages"]
    assert [m.get("tool_name") for m in sent[-2:]] == ["get_weather", "get_weather"]


def test_anthropic_sdk(gateway):
    client = anthropic.Anthropic(base_url=gateway, api_key=CLIENT_TOKEN, max_retries=0)
    message = client.messages.create(model="local/llama", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "echo: hi"
    with client.messages.stream(
        model="local/parallel",
        max_tokens=16,
        messages=[{"role": "user", "content": "Lima"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    ) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content] == [
        ("get_weather", {"input": "Lima", "n": 0}),
        ("get_weather", {"input": "Lima", "n": 1}),
    ]
    assert final.usage.input_tokens == 1


def test_genai_sdk(gateway):
    client = genai.Client(api_key=CLIENT_TOKEN, http_options={"base_url": gateway})
    response = client.models.generate_content(model="local/llama", contents="hi")
    assert response.text == "echo: hi"
    chunks = list(client.models.generate_content_stream(model="local/llama", contents="x y"))
    assert "".join(c.text or "" for c in chunks) == "echo: x y"
    counted = client.models.count_tokens(model="local/llama", contents="one two")
    assert counted.total_tokens == 8  # o200k estimate: 2 words + message and request overhead
    assert response.usage_metadata.prompt_token_count == 1
