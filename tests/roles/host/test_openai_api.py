"""The gateway's OpenAI wire format: parsing, the query text, responses, SSE, keys, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.ledger.vouchers import query_hash
from node.roles.host.apikeys import (
    ApiKey,
    KeyFileError,
    KeyRing,
    RateLimiter,
    UsageBook,
    load_key_file,
)
from node.roles.host.openai_api import (
    SSE_DONE,
    ApiError,
    Usage,
    apply_stop,
    chunk,
    completion_response,
    parse_chat,
    parse_completion,
    parse_json_body,
    render_chat_plain,
    sse,
    usage_chunk,
)
from node.roles.host.store import HostStore, KeyUsage

CAP = 64


def status_of(fn, *args, **kw) -> tuple[int, str | None, str | None]:
    with pytest.raises(ApiError) as info:
        fn(*args, **kw)
    return info.value.status, info.value.param, info.value.code


# ------------------------------------------------------------------ parsing


def test_completion_query_text_is_the_prompt():
    req = parse_completion({"model": "m", "prompt": "  Tell me  a secret ", "max_tokens": 5},
                           max_new_tokens=CAP)
    assert req.query_text == "  Tell me  a secret "
    # normalised as the ledger does (NFC, CRLF -> LF), nothing stripped
    crlf = parse_completion({"model": "m", "prompt": "a\r\nb"}, max_new_tokens=CAP)
    assert query_hash(crlf.query_text) == query_hash("a\nb")
    assert req.max_tokens == 5 and req.kind == "completion" and not req.stream
    # a list holding one prompt is the same prompt
    one = parse_completion({"model": "m", "prompt": ["hi"]}, max_new_tokens=CAP)
    assert one.query_text == "hi" and one.max_tokens == 16  # OpenAI's default for completions


def test_chat_query_text_is_the_last_user_message():
    req = parse_chat({"model": "m", "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [{"type": "text", "text": "sec"},
                                     {"type": "text", "text": "ond"}]},
        {"role": "assistant", "content": None}]}, max_new_tokens=CAP)
    assert req.query_text == "second"
    assert req.max_tokens == CAP  # chat's default is the cap
    assert render_chat_plain(req.messages[:2]) == "be nice\nfirst"


@pytest.mark.parametrize("body, param", [
    ({"prompt": "x"}, "model"),
    ({"model": "m"}, "prompt"),
    ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
    ({"model": "m", "prompt": [1, 2]}, "prompt"),
    ({"model": "m", "prompt": "x", "max_tokens": CAP + 1}, "max_tokens"),
    ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "prompt": "x", "max_tokens": True}, "max_tokens"),
    ({"model": "m", "prompt": "x", "temperature": 3}, "temperature"),
    ({"model": "m", "prompt": "x", "temperature": "hot"}, "temperature"),
    ({"model": "m", "prompt": "x", "n": 2}, "n"),
    ({"model": "m", "prompt": "x", "stop": ["a"] * 5}, "stop"),
    ({"model": "m", "prompt": "x", "stop": [""]}, "stop"),
    ({"model": "m", "prompt": "x", "stream": "yes"}, "stream"),
    ({"model": "m", "prompt": "x", "stream_options": {"include_usage": True}},
     "stream_options"),
])
def test_malformed_completion_fields_are_400_naming_the_field(body, param):
    assert status_of(parse_completion, body, max_new_tokens=CAP)[:2] == (400, param)


@pytest.mark.parametrize("messages", [
    None, [], "hi", [{"role": "user"}, "x"], [{"role": "wizard", "content": "x"}],
    [{"role": "system", "content": "no user here"}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
    [{"role": "user", "content": 5}],
])
def test_malformed_chat_messages_are_400(messages):
    assert status_of(parse_chat, {"model": "m", "messages": messages},
                     max_new_tokens=CAP)[:2] == (400, "messages")


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"\xff\xfe", b"", b'"x"'])
def test_body_that_is_not_a_json_object_is_400(raw):
    assert status_of(parse_json_body, raw)[0] == 400


def test_stream_options_include_usage():
    req = parse_chat({"model": "m", "messages": [{"role": "user", "content": "q"}],
                      "stream": True, "stream_options": {"include_usage": True},
                      "max_completion_tokens": 3}, max_new_tokens=CAP)
    assert req.stream and req.include_usage and req.max_tokens == 3


# ------------------------------------------------------------------ responses and SSE


def test_completion_and_chat_response_shapes():
    comp = parse_completion({"model": "m", "prompt": "p", "echo": True}, max_new_tokens=CAP)
    out = completion_response(comp, id_="cmpl-1", created=9, text=" t", finish_reason="stop",
                              usage=Usage(2, 3))
    assert out["object"] == "text_completion" and out["choices"][0]["text"] == "p t"
    assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    chat = parse_chat({"model": "m", "messages": [{"role": "user", "content": "q"}]},
                      max_new_tokens=CAP)
    out = completion_response(chat, id_="c", created=9, text="a", finish_reason="length",
                              usage=Usage(1, 1))
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "a"}
    assert out["choices"][0]["finish_reason"] == "length"


def test_sse_chunks_usage_and_done():
    req = parse_chat({"model": "m", "messages": [{"role": "user", "content": "q"}],
                      "stream": True, "stream_options": {"include_usage": True}},
                     max_new_tokens=CAP)
    first = chunk(req, id_="c", created=1, text="He", first=True)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "He"}
    assert first["usage"] is None  # include_usage: every chunk carries usage null
    last = usage_chunk(req, id_="c", created=1, usage=Usage(4, 2))
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 6
    raw = sse(first)
    assert raw.startswith(b"data: {") and raw.endswith(b"\n\n") and b"\n" not in raw[:-2]
    assert json.loads(raw[6:]) == first
    assert SSE_DONE == b"data: [DONE]\n\n"
    plain = parse_chat({"model": "m", "messages": [{"role": "user", "content": "q"}],
                        "stream": True}, max_new_tokens=CAP)
    assert "usage" not in chunk(plain, id_="c", created=1, text="x")


def test_apply_stop_cuts_at_the_earliest_stop():
    assert apply_stop("hello world. bye", (".", "o")) == ("hell", True)
    assert apply_stop("hello", ("z",)) == ("hello", False)


def test_error_body_is_openai_shaped():
    err = ApiError(404, "nope", type_="not_found_error", param="model", code="model_not_found")
    assert err.body() == {"error": {"message": "nope", "type": "not_found_error",
                                    "param": "model", "code": "model_not_found"}}


# ------------------------------------------------------------------ keys, limits, usage


def test_keyring_accepts_bearer_keys_and_refuses_others():
    ring = KeyRing([("sk-a", ApiKey("alice", 1, 0))])
    assert ring.authenticate("Bearer sk-a").name == "alice"
    assert ring.authenticate("bearer  sk-a").name == "alice"
    for header in (None, "", "Bearer sk-b", "Basic sk-a", "sk-a"):
        assert status_of(ring.authenticate, header)[::2] == (401, "invalid_api_key")
    open_ring = KeyRing([], require=False)
    assert open_ring.authenticate(None).name == "anonymous"


def test_rate_limit_is_a_sliding_minute():
    now = [100.0]
    limiter = RateLimiter(lambda: now[0])
    key = ApiKey("alice", 2, 0)
    limiter.check(key)
    now[0] += 10
    limiter.check(key)
    with pytest.raises(ApiError) as info:
        limiter.check(key)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
    assert info.value.headers["retry-after"] == "50"
    now[0] += 50.5  # the first request left the window
    limiter.check(key)
    unlimited = ApiKey("bob", 0, 0)
    for _ in range(1000):
        limiter.check(unlimited)


def test_budget_and_usage_survive_a_restart(tmp_path: Path):
    store = HostStore.open(tmp_path / "db")
    book = UsageBook(store)
    key = ApiKey("alice", 0, 10)
    book.check_budget(key)
    book.add("alice", KeyUsage(requests=1, prompt_tokens=4, completion_tokens=6))
    with pytest.raises(ApiError) as info:
        book.check_budget(key)
    assert (info.value.status, info.value.code) == (402, "budget_exceeded")
    book.flush()
    store.close()
    store = HostStore.open(tmp_path / "db")
    again = UsageBook(store)
    assert again.get("alice") == KeyUsage(1, 4, 6, 0)
    store.close()


def test_key_file(tmp_path: Path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"key": "sk-1", "name": "a", "rpm": 5},
                                         {"key": "sk-2", "name": "b", "budget_tokens": 9}]}))
    keys = dict(load_key_file(path, default_rpm=60, default_budget=0))
    assert keys == {"sk-1": ApiKey("a", 5, 0), "sk-2": ApiKey("b", 60, 9)}
    for bad in ("[]", "{", '{"keys": [{"key": "", "name": "a"}]}',
                '{"keys": [{"key": "k", "name": "a", "rpm": -1}]}'):
        path.write_text(bad)
        with pytest.raises(KeyFileError):
            load_key_file(path, default_rpm=60, default_budget=0)
