"""The OpenAI-compatible chat-completions client against a local server speaking that protocol (127.0.0.1, free
port): request shape, auth header, 429 then success, 401 and exhausted retries as clear errors, and a whole
augment run through it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.config.augment import OpenAIGeneratorConfig
from components.data.generators import GenerationRequest, Sampling
from components.data.generators.chat_api import ChatAPIError, ChatAPIGenerator
from components.data.prompts import ChatMessage
from components.stages.augment import augment
from tests.fixtures.augment_project import make_params, train_ids

KEY_ENV = "EMOSAFE_TEST_CHAT_KEY"
SECRET = "sk-test-do-not-log-4242"
SAMPLING = Sampling(max_new_tokens=32, temperature=0.7, top_p=0.9)
REQUEST = GenerationRequest((ChatMessage("system", "be brief"), ChatMessage("user", "hello there")), seed=5)


class ChatServer:
    """Replies from a script of (status, body, headers); once the script is used up, a normal completion."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((dict(self.headers), body))
                if self.path != "/v1/chat/completions":
                    status, reply, headers = 404, {"error": {"type": "not_found"}}, {}
                elif server.script:
                    status, reply, headers = server.script.pop(0)
                else:
                    text = f"Thinking again, {body['messages'][-1]['content'].splitlines()[-1]} feels lighter today"
                    reply = {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
                    status, headers = 200, {}
                data = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def client(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> ChatAPIGenerator:
    monkeypatch.setenv(KEY_ENV, SECRET)
    config = OpenAIGeneratorConfig(
        base_url=chat_server.url, model="test-model", api_key_env=KEY_ENV, timeout_s=5, max_retries=2, backoff_s=0.01
    )
    return ChatAPIGenerator.from_config(config)


def test_request_shape_and_auth_header(client: ChatAPIGenerator, chat_server: ChatServer) -> None:
    [output] = client.generate([REQUEST], SAMPLING)
    assert output.text == "Thinking again, hello there feels lighter today" and not output.truncated
    [(headers, body)] = chat_server.requests
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert body == {
        "model": "test-model",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 5,
        "n": 1,
        "max_tokens": 32,
    }


def test_429_is_retried_then_succeeds(client: ChatAPIGenerator, chat_server: ChatServer) -> None:
    chat_server.script = [(429, {"error": {"type": "rate_limit"}}, {"Retry-After": "0"}), (503, {}, {})]
    [output] = client.generate([REQUEST], SAMPLING)
    assert output.text.startswith("Thinking again") and len(chat_server.requests) == 3


def test_401_fails_at_once_naming_the_env_var_never_the_key(client: ChatAPIGenerator, chat_server: ChatServer) -> None:
    error = {"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "auth", "code": "invalid_api_key"}}
    chat_server.script = [(401, error, {})]
    with pytest.raises(
        ChatAPIError, match=rf"authentication failed \(HTTP 401, auth, invalid_api_key\).*{KEY_ENV}"
    ) as info:
        client.generate([REQUEST], SAMPLING)
    assert SECRET not in str(info.value) and "hello there" not in str(info.value)
    assert len(chat_server.requests) == 1


def test_retries_run_out_with_a_clear_error(client: ChatAPIGenerator, chat_server: ChatServer) -> None:
    chat_server.script = [(500, {"error": {"type": "server_error"}}, {})] * 3
    with pytest.raises(ChatAPIError, match=r"HTTP 500 \(server_error\) after 2 retries"):
        client.generate([REQUEST], SAMPLING)
    assert len(chat_server.requests) == 3


def test_length_finish_reason_marks_truncation(client: ChatAPIGenerator, chat_server: ChatServer) -> None:
    chat_server.script = [(200, {"choices": [{"message": {"content": "cut"}, "finish_reason": "length"}]}, {})]
    assert client.generate([REQUEST], SAMPLING)[0].truncated


def test_unreachable_server_and_missing_key_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    config = OpenAIGeneratorConfig(base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, max_retries=1, backoff_s=0)
    with pytest.raises(ChatAPIError, match=f"environment variable {KEY_ENV} is not set"):
        ChatAPIGenerator.from_config(config)
    offline = ChatAPIGenerator(config.model_copy(update={"timeout_s": 2}), api_key=None, sleep=lambda _: None)
    with pytest.raises(ChatAPIError, match="no answer after 2 attempt"):
        offline.generate([REQUEST], SAMPLING)


def test_augment_through_the_chat_api(root: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    openai = {"base_url": chat_server.url, "model": "served-model", "api_key_env": KEY_ENV}
    result = augment(make_params(root, generator="openai", openai=openai, max_parents=4), root)
    frame = pd.read_parquet(root / "aug" / "dataset.parquet")
    rewrites = frame[frame["origin"] == "augmented"]
    assert len(rewrites) == 4 and set(rewrites["parent_id"]) <= train_ids(root)
    assert set(rewrites["aug_generator"]) == {"openai"} and set(rewrites["aug_model"]) == {"served-model"}
    assert result.run["rewrites"]["generated"] == 4 and len(chat_server.requests) == 4
    assert SECRET not in json.dumps(result.summary)


def test_a_redirect_to_another_origin_never_carries_the_key(client: ChatAPIGenerator, chat_server: ChatServer) -> None:
    """urllib re-sent `Authorization: Bearer <key>` to wherever a redirect pointed (hardening, item 8)."""
    seen: list[dict[str, str]] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def _record(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()

        do_GET = do_POST = _record

        def log_message(self, *args: Any) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        location = f"http://127.0.0.1:{other.server_address[1]}/steal"
        chat_server.script = [(302, {}, {"Location": location})]
        with pytest.raises(ChatAPIError, match="302"):
            client.generate([REQUEST], SAMPLING)
    finally:
        other.shutdown()
        other.server_close()
    assert seen == [] and SECRET not in json.dumps(seen)


def test_a_key_is_never_configured_for_plain_http_to_another_machine() -> None:
    with pytest.raises(ValueError, match="unencrypted"):
        OpenAIGeneratorConfig(base_url="http://api.example.com/v1", api_key_env=KEY_ENV)
    OpenAIGeneratorConfig(base_url="http://localhost:8000/v1", api_key_env=KEY_ENV)  # loopback: fine
    OpenAIGeneratorConfig(base_url="http://10.0.0.5:8000/v1", api_key_env=None)  # no key: fine
