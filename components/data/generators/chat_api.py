"""An OpenAI-compatible chat-completions client (stdlib only): ChatGPT, vLLM, Ollama, llama.cpp server.

``POST {base_url}/chat/completions`` with ``model, messages, temperature, top_p, seed`` and the token budget.
The key is read from the environment variable named in params and sent only in the Authorization header: it
never reaches logs, errors or artifacts. 429, 5xx and connection errors are retried with exponential backoff
(``Retry-After`` wins when the server sends one); 401/403 and other 4xx fail at once with a clear EmosafeError.
Error messages carry the status and the server's error type/code, never its free-text message (which may quote
the key or the request).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from components.config.augment import OpenAIGeneratorConfig
from components.errors import EmosafeError
from components.data.generators import Generation, GenerationRequest, Sampling

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class ChatAPIError(EmosafeError):
    """The chat-completions endpoint refused or failed a request in a way retries cannot fix."""


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """urllib re-sends every header, Authorization included, to wherever a redirect points; a redirect to another
    origin (scheme, host, port) is refused instead, so the key never leaves the configured server."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            raise urllib.error.HTTPError(newurl, code, "redirect to another origin refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class ChatAPIGenerator:
    """One request per message, sequentially (``batch_size`` only sets how often the cache is checkpointed)."""

    kind = "openai"
    batch_size = 8

    def __init__(
        self,
        config: OpenAIGeneratorConfig,
        api_key: str | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.model = config.model
        self.url = f"{config.base_url}/chat/completions"
        self._api_key = api_key
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_SameOriginRedirects)

    @classmethod
    def from_config(cls, config: OpenAIGeneratorConfig) -> ChatAPIGenerator:
        """Read the key from the environment. Raises ChatAPIError when the named variable is unset."""
        key = None
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ChatAPIError(
                    f"augment.openai.api_key_env: environment variable {config.api_key_env} is not set "
                    "(export it, or set api_key_env: null for a local server without authentication)"
                )
        return cls(config, key)

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> list[Generation]:
        return [self._complete(request, sampling) for request in requests]

    def _complete(self, request: GenerationRequest, sampling: Sampling) -> Generation:
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": request.seed,
            "n": 1,
            self.config.max_tokens_field: sampling.max_new_tokens,
        }
        reply = self._post(json.dumps(body).encode("utf-8"))
        try:
            choice = reply["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ChatAPIError(f"{self.url}: response has no choices[0].message (not chat-completions?)") from None
        return Generation(text=str(content), truncated=choice.get("finish_reason") == "length")

    def _post(self, data: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in range(self.config.max_retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.config.timeout_s) as response:
                    payload: dict[str, Any] = json.loads(response.read().decode("utf-8"))
                    return payload
            except urllib.error.HTTPError as exc:
                status, retry_after = exc.code, exc.headers.get("Retry-After")
                detail = _error_detail(exc)
                if status not in RETRYABLE or attempt == self.config.max_retries:
                    raise ChatAPIError(self._describe(status, detail)) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                status, retry_after, detail = 0, None, type(getattr(exc, "reason", exc)).__name__
                if attempt == self.config.max_retries:
                    raise ChatAPIError(
                        f"{self.url}: no answer after {attempt + 1} attempt(s) ({detail}); "
                        f"is the server up? (augment.openai.base_url, timeout_s={self.config.timeout_s})"
                    ) from None
            except json.JSONDecodeError:
                raise ChatAPIError(f"{self.url}: answer is not JSON (is base_url the API root, e.g. .../v1?)") from None
            delay = _delay(retry_after, self.config.backoff_s * 2**attempt)
            log.warning("chat API %s (%s): retry %d/%d in %.1fs", status or "error", detail, attempt + 1,
                        self.config.max_retries, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _describe(self, status: int, detail: str) -> str:
        if status in (401, 403):
            env = self.config.api_key_env
            return f"{self.url}: authentication failed (HTTP {status}, {detail}); check the key in ${env}" + (
                "" if env else " (augment.openai.api_key_env is null: the server wants a key)"
            )
        if status in RETRYABLE:
            return f"{self.url}: HTTP {status} ({detail}) after {self.config.max_retries} retries; try again later"
        if status == 404:
            return f"{self.url}: HTTP 404 ({detail}); check augment.openai.base_url and model '{self.model}'"
        return f"{self.url}: HTTP {status} ({detail}); request rejected for model '{self.model}'"


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The server's error ``type``/``code`` only: free-text messages may echo keys or request text."""
    try:
        error = json.loads(exc.read().decode("utf-8")).get("error", {})
    except (ValueError, AttributeError, OSError):
        return "no error body"
    if not isinstance(error, dict):
        return "no error type"
    parts = [str(error[key])[:60] for key in ("type", "code") if error.get(key)]
    return ", ".join(parts) or "no error type"


def _delay(retry_after: str | None, fallback: float) -> float:
    try:
        return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S) if retry_after else fallback
    except ValueError:  # an HTTP date: rare for these APIs; use our own backoff
        return fallback
