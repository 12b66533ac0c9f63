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


@pytest.fixture(scope="session")
def gateway(upstream, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "modelgate.toml"
    config.write_text(
        f"""
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
"""
    )
    env = dict(os.environ, MODELGATE_LOG="warn")
    env.pop("MODELGATE_CONFIG", None)
    proc, base = _start(
        [_binary("MODELGATE_BIN"), "--config", str(config)], "modelgate listening on ", env
    )
    yield base
    proc.terminate()
    assert proc.wait(timeout=10) == 0, "modelgate did not shut down cleanly on SIGTERM"
