"""The client of a model served behind an OpenAI-compatible API (vLLM's `vllm serve`, and the like).

Only `POST {endpoint}/chat/completions` is used. At most `concurrency` requests are in flight at once.
Connection errors, timeouts, 408, 429 and 5xx answers are retried with exponential backoff and jitter
(honouring Retry-After), `tries` attempts in all; after the last one EndpointUnavailable says what
happened, naming `--endpoint`. Any other 4xx is a mistake in the options (a wrong model name, path or
key) that retrying cannot fix: EndpointRejected at once, naming the option to fix.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_BODY_CHARS = 200


class EndpointError(Exception):
    """The model endpoint cannot be used; the message starts with the option to look at."""


class EndpointUnavailable(EndpointError):
    """The endpoint did not answer usefully within the allowed tries."""


class EndpointRejected(EndpointError):
    """The endpoint refused the request (4xx): the options are wrong."""


@dataclass(frozen=True)
class EndpointOptions:
    url: str  # the API base, e.g. http://host:8000/v1
    model: str
    api_key: str | None = None
    concurrency: int = 4
    tries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 120.0
    temperature: float = 0.7
    max_tokens: int = 2048


class ChatClient:
    """Sends chat requests to one model; use it as an async context manager."""

    def __init__(self, options: EndpointOptions) -> None:
        if options.tries < 1 or options.concurrency < 1:
            raise ValueError(
                f"tries and concurrency must be >= 1, got {options.tries}, {options.concurrency}"
            )
        self.options = options
        self.url = options.url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=options.timeout_s, follow_redirects=True)
        self._slots = asyncio.Semaphore(options.concurrency)

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def complete(self, messages: list[dict[str, str]]) -> str | None:
        """The text of the first choice; None when the answer is not a chat completion at all."""
        body = {
            "model": self.options.model,
            "messages": messages,
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
        }
        last = ""
        last_response: httpx.Response | None = None
        for attempt in range(self.options.tries):
            if attempt:
                await asyncio.sleep(self._backoff(attempt - 1, last_response))
                last_response = None
            try:
                async with self._slots:
                    response = await self._http.post(self.url, json=body)
            except httpx.TimeoutException:
                last = f"no answer within {self.options.timeout_s:g}s"
                continue
            except httpx.TransportError as exc:
                last = _transport_problem(exc)
                continue
            if response.status_code in _RETRY_STATUSES:
                last, last_response = f"HTTP {response.status_code}", response
                continue
            if response.status_code >= 400:
                raise EndpointRejected(_rejection(response, self.url))
            return _content(response)
        raise EndpointUnavailable(f"--endpoint: {last} after {self.options.tries} tries ({self.url})")

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = _retry_after(response) if response is not None else None
        if retry_after is not None:
            return min(self.options.max_backoff_s, retry_after)
        delay = min(self.options.max_backoff_s, self.options.backoff_s * 2**attempt)
        return delay * random.uniform(0.5, 1.0)  # jitter: concurrent retries do not come back together


def _content(response: httpx.Response) -> str | None:
    try:
        payload: Any = response.json()
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _transport_problem(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:  # httpx says "All connection attempts failed"; the OS error says why
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rejection(response: httpx.Response, url: str) -> str:
    """Which option a 4xx points at: the key (401/403), the model (a 404 about it), else the endpoint
    (a wrong path, or a request it cannot serve, such as too many tokens: the body says which)."""
    status, text = response.status_code, " ".join(response.text.split())[:_BODY_CHARS]
    if status in (401, 403):
        option = "--api-key"
    elif status == 404 and "model" in text.lower():  # vLLM: "The model `x` does not exist."
        option = "--model"
    else:
        option = "--endpoint"
    return f"{option}: the endpoint refused the request with HTTP {status} ({url}): {text}"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
