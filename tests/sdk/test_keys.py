"""App keys seen through the official SDKs: a bad token, a model outside
the key's allowlist and a rate limit each raise the SDK's own exception,
with the gateway's message."""

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors

from conftest import APP_KEY, LIMITED_KEY

MESSAGES = [{"role": "user", "content": "hello keys"}]


def openai_client(base, key):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


def anthropic_client(base, key):
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


def genai_client(base, key):
    return genai.Client(api_key=key, http_options={"base_url": base, "api_version": "v1beta"})


def test_openai_sdk_raises_its_own_exceptions(keyed_gateway):
    answer = openai_client(keyed_gateway, APP_KEY).chat.completions.create(
        model="up/gpt-test", messages=MESSAGES
    )
    assert answer.choices[0].message.content == "echo: hello keys"  # via the mock upstream

    with pytest.raises(openai.AuthenticationError) as raised:
        openai_client(keyed_gateway, "not-a-key").chat.completions.create(
            model="default", messages=MESSAGES
        )
    assert "invalid API key" in str(raised.value)

    with pytest.raises(openai.PermissionDeniedError) as raised:
        openai_client(keyed_gateway, APP_KEY).chat.completions.create(
            model="claude/sonnet", messages=MESSAGES
        )
    assert "key 'app' may not use model 'claude/sonnet'" in str(raised.value)

    limited = openai_client(keyed_gateway, LIMITED_KEY)
    with pytest.raises(openai.RateLimitError) as raised:
        for _ in range(2):
            limited.chat.completions.create(model="default", messages=MESSAGES)
    assert "limit of 1 requests per minute" in str(raised.value)
    assert int(raised.value.response.headers["retry-after"]) >= 1


def test_anthropic_sdk_raises_its_own_exceptions(keyed_gateway):
    answer = anthropic_client(keyed_gateway, APP_KEY).messages.create(
        model="default", max_tokens=32, messages=MESSAGES
    )
    assert "hello keys" in answer.content[0].text

    with pytest.raises(anthropic.AuthenticationError) as raised:
        anthropic_client(keyed_gateway, "not-a-key").messages.create(
            model="default", max_tokens=32, messages=MESSAGES
        )
    assert "invalid API key" in str(raised.value)

    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        anthropic_client(keyed_gateway, APP_KEY).messages.create(
            model="claude/sonnet", max_tokens=32, messages=MESSAGES
        )
    assert "may not use model 'claude/sonnet'" in str(raised.value)

    limited = anthropic_client(keyed_gateway, LIMITED_KEY)
    with pytest.raises(anthropic.RateLimitError) as raised:
        for _ in range(2):
            limited.messages.create(model="default", max_tokens=32, messages=MESSAGES)
    assert "limit of 1 requests per minute" in str(raised.value)


def test_genai_sdk_raises_its_own_exceptions(keyed_gateway):
    # Each client is kept in a variable: a dropped genai.Client closes its
    # connection pool under the call.
    allowed = genai_client(keyed_gateway, APP_KEY)
    answer = allowed.models.generate_content(model="default", contents="hello keys")
    assert "hello keys" in answer.text

    stranger = genai_client(keyed_gateway, "not-a-key")
    with pytest.raises(errors.ClientError) as raised:
        stranger.models.generate_content(model="default", contents="hello keys")
    assert raised.value.code == 401
    assert "invalid API key" in raised.value.message

    with pytest.raises(errors.ClientError) as raised:
        allowed.models.generate_content(model="claude/sonnet", contents="hello keys")
    assert raised.value.code == 403
    assert raised.value.status == "PERMISSION_DENIED"

    limited = genai_client(keyed_gateway, LIMITED_KEY)
    with pytest.raises(errors.ClientError) as raised:
        for _ in range(2):
            limited.models.generate_content(model="default", contents="hello keys")
    assert raised.value.code == 429
    assert "limit of 1 requests per minute" in raised.value.message
