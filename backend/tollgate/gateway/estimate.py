"""How many tokens a call may use, before the upstream says how many it did.

The estimate only sizes the hold, and bills a call whose upstream reports no usage. It must
be cheap and need nothing from the network, so there is no tokenizer: English text averages
about 4 characters per token in OpenAI's tokenizers, and each chat message carries a few
tokens of framing (role, separators). Images and other non-text parts count a flat amount,
roughly a high-detail 512 px tile. Code, CJK text and unusual scripts run denser than 4
characters per token, so the estimate can be low for them; `recordUsage` then books the real
usage above the hold and flags it ABOVE_HOLD rather than losing it.

The output side of the hold is the caller's own cap (`max_completion_tokens`, else
`max_tokens`) times the number of choices `n`, or a default cap when the request sets none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
# The assistant reply's own priming ("<|start|>assistant<|message|>").
REPLY_OVERHEAD_TOKENS = 3
NON_TEXT_PART_TOKENS = 765
DEFAULT_MAX_OUTPUT_TOKENS = 4_096
MAX_CHOICES = 128


@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    max_output_tokens: int


def tokens_for_chars(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def tokens_for_text(text: str) -> int:
    return tokens_for_chars(len(text))


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return tokens_for_text(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += tokens_for_text(part["text"])
            elif isinstance(part, str):
                total += tokens_for_text(part)
            else:
                total += NON_TEXT_PART_TOKENS
        return total
    return _json_tokens(content)


def _json_tokens(value: Any) -> int:
    if value is None:
        return 0
    return tokens_for_text(json.dumps(value, separators=(",", ":"), default=str))


def _message_tokens(message: Any) -> int:
    if not isinstance(message, dict):
        return MESSAGE_OVERHEAD_TOKENS + _json_tokens(message)
    total = MESSAGE_OVERHEAD_TOKENS + _content_tokens(message.get("content"))
    for key in ("name", "tool_call_id"):
        if isinstance(message.get(key), str):
            total += tokens_for_text(message[key])
    for key in ("tool_calls", "function_call"):
        total += _json_tokens(message.get(key))
    return total


def _output_cap(body: dict[str, Any], default: int) -> int:
    cap = body.get("max_completion_tokens")
    if cap is None:
        cap = body.get("max_tokens")
    if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
        cap = default
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_CHOICES else 1
    return int(cap) * choices


def chat(
    body: dict[str, Any], default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
) -> Estimate:
    messages = body.get("messages")
    prompt = REPLY_OVERHEAD_TOKENS
    if isinstance(messages, list):
        prompt += sum(_message_tokens(m) for m in messages)
    # Tool and schema definitions are sent to the model as part of the prompt.
    for key in ("tools", "functions", "response_format"):
        prompt += _json_tokens(body.get(key))
    return Estimate(prompt, _output_cap(body, default_max_output_tokens))


def embeddings(body: dict[str, Any]) -> Estimate:
    """`input` is a string, a list of strings, a list of token ids or a list of such lists."""
    value = body.get("input")
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(i, int) for i in items):
        return Estimate(len(items), 0)
    total = 0
    for item in items:
        if isinstance(item, str):
            total += tokens_for_text(item)
        elif isinstance(item, list):
            total += len(item)
    return Estimate(total, 0)
