"""The gateway's pure parts: sizing a request, and following an event stream byte by byte."""

from __future__ import annotations

import json

from tollgate.gateway import estimate
from tollgate.gateway.usage import SseTracker, TokenUsage, parse_usage


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(content: str | None, usage: dict[str, object] | None = None) -> bytes:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return _event({"object": "chat.completion.chunk", "choices": choices, "usage": usage})


def test_estimate_counts_text_framing_tools_and_the_output_cap() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 8}, {"type": "image_url"}]},
        ],
        "max_completion_tokens": 50,
        "max_tokens": 999,
        "n": 3,
    }
    sized = estimate.chat(body)
    # 3 for the reply, 2 * 4 per message, 10 + 2 of text, one image part.
    assert sized.input_tokens == 3 + 8 + 10 + 2 + estimate.NON_TEXT_PART_TOKENS
    assert sized.max_output_tokens == 150
    with_tools = estimate.chat({**body, "tools": [{"type": "function", "name": "f" * 100}]})
    assert with_tools.input_tokens > sized.input_tokens
    assert estimate.chat({"messages": []}).max_output_tokens == estimate.DEFAULT_MAX_OUTPUT_TOKENS
    assert estimate.chat({"messages": [], "max_tokens": True}).max_output_tokens == 4_096


def test_estimate_embeddings_of_text_and_of_token_ids() -> None:
    assert estimate.embeddings({"input": "abcdefgh"}) == estimate.Estimate(2, 0)
    assert estimate.embeddings({"input": ["abcd", "efghi"]}) == estimate.Estimate(3, 0)
    assert estimate.embeddings({"input": [1, 2, 3]}) == estimate.Estimate(3, 0)
    assert estimate.embeddings({"input": [[1, 2], [3]]}) == estimate.Estimate(3, 0)


def test_usage_is_read_only_when_it_makes_sense() -> None:
    full = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert parse_usage(full) == TokenUsage(10, 4, 3)
    assert TokenUsage(10, 4, 3).uncached_input_tokens == 7
    # More cached than prompt tokens is capped; unreadable counts are no usage at all.
    assert parse_usage({"prompt_tokens": 2, "prompt_tokens_details": {"cached_tokens": 9}}) == (
        TokenUsage(2, 0, 2)
    )
    for bad in (None, [], {"prompt_tokens": -1}, {"prompt_tokens": "5"}, {"prompt_tokens": True}):
        assert parse_usage(bad) is None


def test_the_tracker_forwards_whole_events_split_anywhere() -> None:
    stream = (
        _chunk("Hello")
        + b": a comment\r\n\r\n"
        + _chunk(" world")
        + _chunk(None, {"prompt_tokens": 5, "completion_tokens": 2})
        + b"data: [DONE]\n\n"
    )
    for size in (1, 3, 7, len(stream)):
        tracker = SseTracker(client_wants_usage=True)
        out = b"".join(tracker.feed(stream[i : i + size]) for i in range(0, len(stream), size))
        assert out == stream.replace(b"\r\n", b"\n")
        assert tracker.usage == TokenUsage(5, 2) and tracker.done
        assert tracker.output_tokens_seen == 3  # 11 characters


def test_the_tracker_hides_the_usage_chunk_from_a_client_that_did_not_ask() -> None:
    tracker = SseTracker(client_wants_usage=False)
    usage = {"prompt_tokens": 5, "completion_tokens": 2}
    out = tracker.feed(_chunk("Hi") + _chunk(None, usage) + b"data: [DONE]\n\n")
    assert out == _chunk("Hi") + b"data: [DONE]\n\n"
    assert tracker.usage == TokenUsage(5, 2)


def test_a_cut_stream_passes_on_whole_events_only_and_counts_their_text() -> None:
    tracker = SseTracker(client_wants_usage=False)
    whole = _chunk("abcdefgh")
    assert tracker.feed(whole + whole[:10]) == whole
    assert tracker.usage is None and not tracker.done
    assert tracker.output_tokens_seen == 2
