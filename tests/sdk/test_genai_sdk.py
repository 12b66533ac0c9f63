"""The official `google-genai` SDK against the real modelgate binary, to the
mock, to OpenAI-compatible and Anthropic upstreams (translated) and to a
Gemini upstream (pass-through)."""

import json

import pytest
from google import genai
from google.genai import errors, types

from conftest import CLIENT_TOKEN, UPSTREAM_SECRET

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city",
            parameters_json_schema={
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        )
    ]
)
NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


@pytest.fixture(params=["v1", "v1beta"])
def client(gateway, request):
    return genai.Client(
        api_key=CLIENT_TOKEN, http_options={"base_url": gateway, "api_version": request.param}
    )


def test_generate_with_the_default_mock(client):
    response = client.models.generate_content(
        model="default",
        contents="Hello Gemini SDK",
        config=types.GenerateContentConfig(system_instruction="be brief"),
    )
    assert response.text == "Hello Gemini SDK"
    assert response.usage_metadata.prompt_token_count == 5
    assert response.usage_metadata.candidates_token_count == 3


def test_streaming_with_the_default_mock(client):
    chunks = list(client.models.generate_content_stream(model="default", contents="stream these words"))
    assert "".join(chunk.text or "" for chunk in chunks) == "stream these words"
    assert len([chunk for chunk in chunks if chunk.text]) == 3
    assert chunks[-1].usage_metadata.candidates_token_count == 3


def test_function_call_round_trip_with_the_mock(client):
    config = types.GenerateContentConfig(
        tools=[WEATHER],
        automatic_function_calling=NO_AUTO_CALLS,
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
    )
    first = client.models.generate_content(model="mock/echo", contents="Oslo", config=config)
    call = first.function_calls[0]
    assert (call.name, call.args) == ("get_weather", {"city": "Oslo"})
    history = [
        types.Content(role="user", parts=[types.Part(text="Oslo")]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(name="get_weather", response={"temp": "12 C"}))],
        ),
    ]
    second = client.models.generate_content(model="mock/echo", contents=history, config=types.GenerateContentConfig(tools=[WEATHER]))
    assert second.text == 'tool get_weather returned: {"temp":"12 C"}'


def test_translated_to_an_openai_upstream(client, upstream):
    upstream.clear()
    response = client.models.generate_content(model="up/gpt-test", contents="via openai")
    assert response.text == "echo: via openai"
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-test-upstream"
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_SECRET}"


def test_streamed_parallel_calls_from_openai_keep_names_and_args(client):
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AUTO_CALLS)
    calls = []
    for chunk in client.models.generate_content_stream(model="up/parallel", contents="Lima", config=config):
        calls += chunk.function_calls or []
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"input": "Lima", "n": 0}),
        ("get_weather", {"input": "Lima", "n": 1}),
    ]


def test_translated_to_an_anthropic_upstream(client, upstream):
    upstream.clear()
    response = client.models.generate_content(
        model="claude/sonnet", contents="via claude", config=types.GenerateContentConfig(system_instruction="sys")
    )
    assert response.text == "echo: via claude"
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["system"] == "sys"
    assert sent["body"]["max_tokens"] == 4096


def test_pass_through_to_a_gemini_upstream(client, upstream):
    upstream.clear()
    response = client.models.generate_content(model="gem/flash", contents="native")
    assert response.text == "echo: native"
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1beta/models/gemini-test-upstream:generateContent"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_SECRET
    assert CLIENT_TOKEN not in json.dumps(sent["headers"])
    chunks = list(client.models.generate_content_stream(model="gem/flash", contents="a b"))
    assert "".join(chunk.text or "" for chunk in chunks) == "echo: a b"


def test_count_tokens(client):
    for model, expected in [("default", 4), ("gem/flash", 4), ("claude/sonnet", 4), ("up/gpt-test", 10)]:
        counted = client.models.count_tokens(model=model, contents="one two three four")
        assert counted.total_tokens == expected, model


def test_models_list(client):
    names = [model.name for model in client.models.list()]
    assert names[:2] == ["models/default", "models/fast"]
    assert "models/gem/flash" in names


def test_unknown_model_is_a_404_client_error(client):
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="gemini-nope", contents="x")
    assert raised.value.code == 404
    assert "unknown model 'gemini-nope'" in raised.value.message


@pytest.mark.parametrize(
    "model, exception, code",
    [("up/error-429", errors.ClientError, 429), ("up/error-500", errors.ServerError, 502), ("gem/error-429", errors.ClientError, 429)],
)
def test_upstream_failures_raise_the_matching_exception(client, model, exception, code):
    with pytest.raises(exception) as raised:
        client.models.generate_content(model=model, contents="x")
    assert raised.value.code == code
    assert "mock upstream failure" in raised.value.message


def test_mid_stream_failure_raises(client):
    with pytest.raises(errors.APIError) as raised:
        for _ in client.models.generate_content_stream(model="up/midstream-error", contents="a b c"):
            pass
    assert "mock upstream broke mid-stream" in str(raised.value)


def test_openai_sdk_to_a_gemini_backend(gateway):
    import openai

    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=CLIENT_TOKEN, max_retries=0)
    completion = client.chat.completions.create(
        model="gem/flash", messages=[{"role": "user", "content": "from openai"}]
    )
    assert completion.choices[0].message.content == "echo: from openai"
    assert completion.usage.prompt_tokens == 2
