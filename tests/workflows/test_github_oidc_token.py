"""tools/github_oidc_token.py against a loopback stand-in for the job's token endpoint: the file it keeps
holds a token for the audience Entra expects, is replaced by a newer token on every tick, and survives a
failed request (GitHub docs, "OpenID Connect": GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=..., bearer
ACTIONS_ID_TOKEN_REQUEST_TOKEN, answer `{"value": "<jwt>"}`)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tools import github_oidc_token as tool

ROOT = Path(__file__).resolve().parents[2]


class Endpoint(ThreadingHTTPServer):
    """Answers token N on the N-th request; `fail_next` makes the next answer a 500."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[dict, str]] = []
        self.fail_next = False
        self.served = threading.Condition()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server: Endpoint = self.server  # type: ignore[assignment]
        with server.served:
            server.requests.append((parse_qs(urlsplit(self.path).query), self.headers["Authorization"]))
            failing, server.fail_next = server.fail_next, False
            count = len(server.requests)
            server.served.notify_all()
        if failing:
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"count": count, "value": f"token-{count}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Endpoint) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/token?api-version=2.0"


def test_token_url_adds_the_audience_to_the_existing_query():
    url = tool.token_url("https://runner.example/_apis/token?api-version=2.0&audience=other")
    assert parse_qs(urlsplit(url).query) == {"api-version": ["2.0"], "audience": ["api://AzureADTokenExchange"]}


def test_first_token_is_written_with_mode_0600_for_the_federation_audience(endpoint, tmp_path):
    path = tmp_path / "token"
    tool.write(path, tool.fetch(_url(endpoint), "request-token"))
    assert path.read_text() == "token-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (query, authorization), = endpoint.requests
    assert query["audience"] == ["api://AzureADTokenExchange"] and authorization == "Bearer request-token"


def test_the_file_is_refreshed_until_the_deadline_and_keeps_the_last_good_token(endpoint, tmp_path):
    path = tmp_path / "token"
    tool.write(path, "token-0")
    endpoint.fail_next = True  # the first refresh fails: the file keeps token-0, the next tick recovers
    seen = []
    deadline = time.monotonic() + 1.0
    writes = tool.refresh(path, _url(endpoint), "request-token", tool.AUDIENCE, 0.05, deadline)
    seen.append(path.read_text())
    assert writes == len(endpoint.requests) - 1 >= 3
    assert seen == [f"token-{len(endpoint.requests)}"]
    assert time.monotonic() >= deadline - 0.05


def test_missing_endpoint_is_one_line_and_exit_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONS_ID_TOKEN")}
    result = subprocess.run([sys.executable, "tools/github_oidc_token.py", "--file", str(tmp_path / "t")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "id-token: write" in result.stderr
    assert not (tmp_path / "t").exists()


def test_background_mode_returns_at_once_and_keeps_refreshing(endpoint, tmp_path):
    """As the workflow step runs it: the step's command returns after the first token; a detached child
    keeps replacing the file (observed by its content changing, bounded wait) until its deadline."""
    path = tmp_path / "token"
    env = {**os.environ, "ACTIONS_ID_TOKEN_REQUEST_URL": _url(endpoint),
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
    result = subprocess.run(
        [sys.executable, "tools/github_oidc_token.py", "--file", str(path), "--background", "--every", "0.05",
         "--until-minutes", "0.02"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert path.read_text().startswith("token-")
    with endpoint.served:
        assert endpoint.served.wait_for(lambda: len(endpoint.requests) >= 4, timeout=30)
    # The child stops by itself after --until-minutes (1.2 s) and says so in its log (bounded wait).
    log = path.with_name(path.name + ".log")
    deadline = time.monotonic() + 30
    while "stopped after" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    (writes,) = re.findall(r"stopped after (\d+) refreshes", log.read_text())
    assert len(endpoint.requests) == 1 + int(writes) >= 4  # the first token, then each refresh
    assert path.read_text() == f"token-{len(endpoint.requests)}"
