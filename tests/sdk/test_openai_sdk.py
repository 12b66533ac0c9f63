"""The official `openai` SDK against the real modelgate binary."""

import json

import openai
import pytest

from conftest import CLIENT_TOKEN, UPSTREAM_SECRET

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=CLIENT_TOKEN, max_retries=0)


def test_chat_with_the_default_mock(client):
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hello from the SDK"}]
    )
    assert completion.choices[0].message.content == "Hello from the SDK"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 4
    assert completion.model == "echo"


def test_streaming_with_the_default_mock(client):
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "stream these four words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ["stream ", "these ", "four ", "words"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 4


def test_tool_call_round_trip_with_the_mock(client):
    messages = [{"role": "user", "content": "Oslo"}]
    first = client.chat.completions.create(
        model="mock/echo", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12 C and clear"},
    ]
    second = client.chat.completions.create(model="mock/echo", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "tool get_weather returned: 12 C and clear"


def test_streamed_tool_call_with_the_mock(client):
    stream = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "Lima"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    name, arguments = None, ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name = call.function.name or name
            arguments += call.function.arguments or ""
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Lima"}


def test_pass_through_to_an_openai_compatible_upstream(client, upstream):
    upstream.clear()
    completion = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "via upstream"}], temperature=0.1
    )
    assert completion.choices[0].message.content == "echo: via upstream"
    assert completion.id.startswith("chatcmpl-mock-")
    sent = upstream.requests()[-1]
    assert sent["body"]["model"] == "gpt-test-upstream"
    assert sent["body"]["temperature"] == 0.1
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    assert CLIENT_TOKEN not in json.dumps(sent["headers"])


def test_streamed_pass_through_with_usage(client):
    stream = client.chat.completions.create(
        model="up/gpt-test",
        messages=[{"role": "user", "content": "one two"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two"
    assert chunks[-1].usage.prompt_tokens == 2


def test_tool_round_trip_through_the_upstream(client):
    messages = [{"role": "user", "content": "weather please"}]
    first = client.chat.completions.create(model="up/parallel", messages=messages, tools=[WEATHER_TOOL])
    calls = first.choices[0].message.tool_calls
    assert [c.id for c in calls] == ["call_mock_0", "call_mock_1"]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"result {c.id}"} for c in calls]
    second = client.chat.completions.create(model="up/parallel", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "tool result was: result call_mock_1"


def test_models_list(client):
    ids = [model.id for model in client.models.list()]
    assert ids[:3] == ["default", "fast", "mock/echo"]
    assert "up/gpt-test" in ids


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-tset", messages=[{"role": "user", "content": "x"}])
    assert "unknown model 'gpt-tset'" in raised.value.message
    assert "did you mean 'up/gpt-test'" in raised.value.message
    assert raised.value.code == "model_not_found"


@pytest.mark.parametrize(
    "model, exception",
    [
        ("up/error-400", openai.BadRequestError),
        ("up/error-401", openai.AuthenticationError),
        ("up/error-429", openai.RateLimitError),
        ("up/error-500", openai.InternalServerError),
        ("up/error-503", openai.InternalServerError),
    ],
)
def test_upstream_failures_raise_the_matching_exception(client, model, exception):
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    status = int(model.rsplit("-", 1)[1])
    assert raised.value.status_code == status
    assert f"mock upstream failure {status}" in raised.value.message


def test_mid_stream_failure_raises(client):
    stream = client.chat.completions.create(
        model="up/midstream-error", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert "mock upstream broke mid-stream" in str(raised.value)


def test_bad_request_from_the_gateway(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="default", messages=[{"role": "wizard", "content": "x"}])
    assert "unknown role 'wizard'" in raised.value.message


def test_project_prefix(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/api/team-a/v1", api_key=CLIENT_TOKEN, max_retries=0)
    completion = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "hi"


def test_one_client_goes_on_across_connections_the_gateway_closes(recycling_gateway):
    # Each connection carries two requests (`keepalive_requests = 2`): the
    # second answer on it says `connection: close`, and the SDK's pool
    # opens a new connection for the next request without an error.
    client = openai.OpenAI(base_url=f"{recycling_gateway}/v1", api_key=CLIENT_TOKEN, max_retries=0)
    said = []
    for turn in range(6):
        through_upstream = turn % 3 == 0
        streamed = turn % 2 == 1
        raw = client.chat.completions.with_raw_response.create(
            model="up/gpt-test" if through_upstream else "mock/echo",
            messages=[{"role": "user", "content": f"turn {turn}"}],
            stream=streamed,
        )
        said.append(raw.headers.get("connection"))
        answer = raw.parse()
        if streamed:
            text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        else:
            text = answer.choices[0].message.content
        assert text == (f"echo: turn {turn}" if through_upstream else f"turn {turn}")
    assert said == [None, "close"] * 3
