"""The usage an upstream reports, read from a JSON body or from a stream of server-sent events.

OpenAI reports usage in `usage` (`prompt_tokens`, `completion_tokens` and, for prompt caching,
`prompt_tokens_details.cached_tokens`). A stream reports it only when asked with
`stream_options.include_usage`, in one last chunk with empty `choices`; the gateway always
asks, and hides that chunk from a client that did not. When no usage arrives (an upstream that
does not report it, a stream cut short), the output is counted from the text seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tollgate.gateway.estimate import tokens_for_chars, tokens_for_text


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def parse_usage(usage: Any) -> TokenUsage | None:
    """None unless `usage` holds a readable prompt token count."""
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    if prompt is None:
        return None
    completion = _count(usage.get("completion_tokens")) or 0
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return TokenUsage(prompt, completion, min(cached or 0, prompt))


def _delta_text(choice: Any, key: str) -> str:
    """The generated text of one choice: content, refusal, reasoning and tool arguments."""
    if not isinstance(choice, dict):
        return ""
    part = choice.get(key)
    if not isinstance(part, dict):
        return ""
    pieces = [part.get(k) for k in ("content", "refusal", "reasoning_content", "reasoning")]
    calls = part.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            pieces += [function.get("name"), function.get("arguments")]
    legacy = part.get("function_call")
    if isinstance(legacy, dict):
        pieces += [legacy.get("name"), legacy.get("arguments")]
    return "".join(p for p in pieces if isinstance(p, str))


def completion_text_tokens(body: Any) -> int:
    """Output tokens of a non-streamed chat completion, counted from its text."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        return 0
    return sum(tokens_for_text(_delta_text(c, "message")) for c in choices)


class SseTracker:
    """Follows a chat completion stream on its way to the client.

    `feed` takes bytes as they arrive and returns the bytes to forward: whole events, each as
    the upstream sent it, except the usage-only chunk when the client did not ask for usage.
    Events are passed on whole, so a client never sees half a `data:` line; an event the
    upstream never finished (no blank line before it closed) is dropped, as the SSE standard
    has a client do.
    """

    def __init__(self, *, client_wants_usage: bool) -> None:
        self.client_wants_usage = client_wants_usage
        self.usage: TokenUsage | None = None
        self.done = False
        self._chars = 0
        self._pending = b""
        self._event: list[bytes] = []

    @property
    def output_tokens_seen(self) -> int:
        return tokens_for_chars(self._chars)

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        out: list[bytes] = []
        for raw in lines:
            line = raw.removesuffix(b"\r")
            if line:
                self._event.append(line)
                continue
            if self._event:
                out.append(self._finish_event())
        return b"".join(out)

    def _finish_event(self) -> bytes:
        lines, self._event = self._event, []
        data = b"\n".join(
            line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")
        )
        if self._inspect(data):
            return b"\n".join(lines) + b"\n\n"
        return b""

    def _inspect(self, data: bytes) -> bool:
        """Takes what the event tells; False when the client must not see it."""
        if not data:
            return True
        if data.strip() == b"[DONE]":
            self.done = True
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            return True
        if not isinstance(chunk, dict):
            return True
        choices = chunk.get("choices")
        if isinstance(choices, list):
            self._chars += sum(len(_delta_text(c, "delta")) for c in choices)
        usage = parse_usage(chunk.get("usage"))
        if usage is None:
            return True
        self.usage = usage
        return self.client_wants_usage or bool(choices)
