"""Starts the real mock upstream and the real modelgate binary for the SDK suite.

The binaries come from MODELGATE_BIN and MOCK_UPSTREAM_BIN, the example
plugin from MODELGATE_PROCESS_PLUGIN (all set by `cargo xtask test`); each prints "... listening on http://ADDR" once it
accepts connections, which is what the fixtures wait for.
"""

import json
import os
import pathlib
import subprocess
import urllib.request

import pytest

UPSTREAM_SECRET = "sk-upstream-secret-sdk"
CLIENT_TOKEN = "client-token-sdk"


def _start(argv, marker, env=None):
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        env=env,
    )
    for line in proc.stdout:
        if marker in line:
            return proc, line.split(marker, 1)[1].strip()
    proc.kill()
    raise RuntimeError(f"{argv[0]} exited before announcing its address")


def _binary(var):
    path = os.environ.get(var)
    if not path or not pathlib.Path(path).is_file():
        pytest.exit(f"{var} must name a built file; run the suite with `cargo xtask test`", 2)
    return path


class Upstream:
    def __init__(self, base):
        self.base = base

    def requests(self):
        with urllib.request.urlopen(f"{self.base}/_mock/requests", timeout=10) as response:
            return json.load(response)

    def clear(self):
        request = urllib.request.Request(f"{self.base}/_mock/requests", method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def upstream():
    proc, base = _start([_binary("MOCK_UPSTREAM_BIN")], "mock-upstream listening on ")
    yield Upstream(base)
    proc.kill()
    proc.wait(timeout=10)


def _main_config(upstream):
    """The config of the `gateway` fixture: every dialect, the mock
    upstream behind each, the process plugin."""
    return f"""
[server]
listen = "127.0.0.1:0"

[[backends]]
id = "mock"
dialect = "mock"
models = [{{ id = "echo" }}]

[[backends]]
id = "up"
dialect = "openai"
endpoint = "{upstream.base}/v1"
credential = {{ inline = "{UPSTREAM_SECRET}" }}
models = [
  {{ id = "gpt-test", upstream = "gpt-test-upstream" }},
  {{ id = "parallel" }},
  {{ id = "midstream-error" }},
  {{ id = "error-400" }},
  {{ id = "error-401" }},
  {{ id = "error-429" }},
  {{ id = "error-500" }},
  {{ id = "error-503" }},
]

[[backends]]
id = "claude"
dialect = "anthropic"
endpoint = "{upstream.base}"
credential = {{ inline = "{UPSTREAM_SECRET}" }}
models = [
  {{ id = "sonnet", upstream = "claude-test-upstream" }},
  {{ id = "parallel" }},
  {{ id = "midstream-error" }},
  {{ id = "error-429" }},
  {{ id = "error-500" }},
]

[[backends]]
id = "gem"
dialect = "gemini"
endpoint = "{upstream.base}"
credential = {{ inline = "{UPSTREAM_SECRET}" }}
models = [
  {{ id = "flash", upstream = "gemini-test-upstream" }},
  {{ id = "parallel" }},
  {{ id = "error-429" }},
]

[[backends]]
id = "local"
dialect = "ollama"
endpoint = "{upstream.base}"
models = [{{ id = "llama", upstream = "llama-test-upstream" }}, {{ id = "parallel" }}]

[[plugins]]
path = "{_binary("MODELGATE_PROCESS_PLUGIN")}"

[[backends]]
id = "script"
dialect = "process"
models = [{{ id = "upper" }}]
options = {{ command = "tr", args = ["a-z", "A-Z"] }}

[aliases]
default = "mock/echo"
fast = "up/gpt-test"

# Quick retries; the mock's Retry-After of 7 s is not waited out.
[reliability]
backoff_base_ms = 1
backoff_max_ms = 5
max_retry_after_ms = 1000
"""


@pytest.fixture(scope="session")
def gateway(upstream, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "modelgate.toml"
    config.write_text(_main_config(upstream))
    yield from _serve(config)


@pytest.fixture(scope="session")
def recycling_gateway(upstream, tmp_path_factory):
    """The `gateway` fixture's config, with client connections that carry
    two requests each."""
    server = '[server]\nlisten = "127.0.0.1:0"\n'
    text = _main_config(upstream)
    assert server in text
    config = tmp_path_factory.mktemp("recycling") / "modelgate.toml"
    config.write_text(text.replace(server, server + "keepalive_requests = 2\n", 1))
    yield from _serve(config)


def _serve(config, **extra_env):
    """Runs modelgate on `config` until the fixture ends; checks it stops
    cleanly on SIGTERM."""
    env = dict(os.environ, MODELGATE_LOG="warn", **extra_env)
    env.pop("MODELGATE_CONFIG", None)
    proc, base = _start(
        [_binary("MODELGATE_BIN"), "--config", str(config)], "modelgate listening on ", env
    )
    yield base
    proc.terminate()
    assert proc.wait(timeout=10) == 0, "modelgate did not shut down cleanly on SIGTERM"


# App keys for the keyed gateway: one read from the environment, allowed
# `default` and the `up` backend; one stored as a SHA-256, limited to one
# request per minute.
APP_KEY = "mg-sdk-app-key"
LIMITED_KEY = "mg-sdk-limited-key"


@pytest.fixture(scope="session")
def keyed_gateway(upstream, tmp_path_factory):
    import hashlib

    limited_digest = hashlib.sha256(LIMITED_KEY.encode()).hexdigest()
    config = tmp_path_factory.mktemp("keyed") / "modelgate.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:0"

[[keys]]
id = "app"
token = {{ env = "MODELGATE_SDK_APP_KEY" }}
models = ["default", "up/*"]

[[keys]]
id = "limited"
token = {{ sha256 = "{limited_digest}" }}
rpm = 1

[[backends]]
id = "mock"
dialect = "mock"
models = [{{ id = "echo" }}]

[[backends]]
id = "up"
dialect = "openai"
endpoint = "{upstream.base}/v1"
models = [{{ id = "gpt-test" }}]

[[backends]]
id = "claude"
dialect = "anthropic"
endpoint = "{upstream.base}"
models = [{{ id = "sonnet" }}]

[aliases]
default = "mock/echo"
"""
    )
    yield from _serve(config, MODELGATE_SDK_APP_KEY=APP_KEY)
