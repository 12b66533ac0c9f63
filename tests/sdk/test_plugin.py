"""The official `openai` SDK routed through a run-time plugin (the example
`process` plugin, built by its own cargo invocation and loaded from config)."""

import openai

from conftest import CLIENT_TOKEN


def test_openai_sdk_through_the_process_plugin(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key=CLIENT_TOKEN, max_retries=0)
    completion = client.chat.completions.create(
        model="script/upper", messages=[{"role": "user", "content": "through a plugin"}]
    )
    assert completion.choices[0].message.content == "THROUGH A PLUGIN\n"
    stream = client.chat.completions.create(
        model="script/upper", messages=[{"role": "user", "content": "one\ntwo"}], stream=True
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces == ["ONE\n", "TWO\n"]
