"""The gateway served by hypercorn on 127.0.0.1:0, driven by the official ``openai`` client.

A tiny real model answers; the owner is a fake that behaves like the owner's
service on the wire (see ``gwkit``). The client runs in a worker thread (it
is synchronous), the gateway in the test's trio loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import trio

from node.ledger.vouchers import query_hash, verify_permission
from node.roles.host.store import HostStore
from node.roles.owner.protocol import Refusal

from .gwkit import (
    CHAIN_ID,
    HOST,
    KEY,
    MODEL_ID,
    MODEL_NAME,
    OWNER,
    FakeOwner,
    make_gateway,
    make_permitter,
    serving,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def store(tmp_path: Path):
    s = HostStore.open(tmp_path / "host")
    yield s
    s.close()


def client(base: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)


def in_thread(fn):
    return trio.to_thread.run_sync(fn)


def assert_permitted(store: HostStore, query: str) -> None:
    permits = store.permits_for(MODEL_ID, query_hash(query))
    assert permits, f"no permission stored for {query!r}"
    p = permits[-1]
    assert verify_permission(OWNER.public_key, CHAIN_ID, MODEL_ID, HOST.address, p.seq,
                             query_hash(query), p.signature, issued_height=p.issued_height)


async def test_openai_client_completions_chat_and_streaming(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    async with serving(gateway, permitter) as base:
        def calls():
            c = client(base)
            models = c.models.list()
            assert [m.id for m in models.data] == [MODEL_NAME]
            comp = c.completions.create(model=MODEL_NAME, prompt="the cat sat", max_tokens=6,
                                        temperature=0)
            chat = c.chat.completions.create(
                model=MODEL_NAME, max_tokens=6, temperature=0,
                messages=[{"role": "system", "content": "be brief"},
                          {"role": "user", "content": "hello there"}])
            chunks = list(c.chat.completions.create(
                model=MODEL_NAME, max_tokens=6, temperature=0, stream=True,
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "hello there"}]))
            comp_stream = list(c.completions.create(model=MODEL_NAME, prompt="the cat sat",
                                                    max_tokens=6, temperature=0, stream=True))
            return comp, chat, chunks, comp_stream

        comp, chat, chunks, comp_stream = await in_thread(calls)
    assert comp.object == "text_completion" and comp.model == MODEL_NAME
    assert comp.usage.completion_tokens >= 1
    assert comp.usage.total_tokens == comp.usage.prompt_tokens + comp.usage.completion_tokens
    assert comp.choices[0].finish_reason in ("stop", "length")
    assert chat.choices[0].message.role == "assistant"
    # streaming gives the same text as the whole answer (greedy), usage in the last chunk
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens >= 1
    assert all(ch.usage is None for ch in chunks[:-1])
    assert "".join(ch.choices[0].text for ch in comp_stream) == comp.choices[0].text
    assert comp_stream[-1].choices[0].finish_reason == comp.choices[0].finish_reason
    assert streamed.startswith(chat.choices[0].message.content[:1])
    # every answered query has a stored permission for its query text (chat: last user msg)
    assert_permitted(store, "the cat sat")
    assert_permitted(store, "hello there")
    assert store.permit_count() == 4 and engine.runs == 4
    assert store.voucher(MODEL_ID).count == 4
    usage = gateway.usage.get("alice")
    assert usage.requests == 4 and usage.prompt_tokens > 0 and usage.completion_tokens > 0


async def test_refusal_is_402_and_the_model_does_not_run(engine, store):
    owner = FakeOwner(refuse=Refusal.ESCROW_EXHAUSTED)
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    async with serving(gateway, permitter) as base:
        def calls():
            c = client(base)
            out = []
            for stream in (False, True):
                with pytest.raises(openai.APIStatusError) as info:
                    c.completions.create(model=MODEL_NAME, prompt="x", stream=stream)
                out.append(info.value)
            return out

        errors = await in_thread(calls)
    for err in errors:
        assert err.status_code == 402
        assert err.body["type"] == "insufficient_quota"
        assert err.body["code"] == "escrow_exhausted"
    assert engine.runs == 0 and store.permit_count() == 0
    assert len(owner.requests) == 2  # the client did not retry: 402 is not retried
    assert gateway.usage.get("alice").refused == 2


@pytest.mark.parametrize("code, status", [(Refusal.HOST_NOT_ACTIVE, 402),
                                          (Refusal.RATE_LIMITED, 429),
                                          (None, 503)])
async def test_other_refusals(engine, store, code, status):
    owner = FakeOwner(refuse=code) if code is not None else FakeOwner()
    permitter = make_permitter(store, owner)
    if code is None:
        owner.ledger.model = lambda model_id: None  # nobody can sell a permission
    gateway = make_gateway(engine, permitter, store)
    async with serving(gateway, permitter) as base, httpx.AsyncClient() as http:
        resp = await http.post(base + "/completions", headers={"authorization": f"Bearer {KEY}"},
                               json={"model": MODEL_NAME, "prompt": "x"})
    assert resp.status_code == status
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    assert engine.runs == 0


async def test_bad_key_rate_limit_and_budget_cost_nothing(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store, rpm=2)
    async with serving(gateway, permitter) as base:
        def calls():
            with pytest.raises(openai.AuthenticationError) as bad:
                client(base, "sk-wrong").completions.create(model=MODEL_NAME, prompt="x")
            c = client(base)
            for _ in range(2):
                c.completions.create(model=MODEL_NAME, prompt="x", max_tokens=2)
            with pytest.raises(openai.RateLimitError) as limited:
                c.completions.create(model=MODEL_NAME, prompt="x", max_tokens=2)
            return bad.value, limited.value

        bad, limited = await in_thread(calls)
    assert bad.status_code == 401 and bad.body["code"] == "invalid_api_key"
    assert limited.status_code == 429 and limited.body["code"] == "rate_limit_exceeded"
    assert limited.response.headers["retry-after"].isdigit()
    assert len(owner.requests) <= 2 and store.permit_count() == 2 and engine.runs == 2


async def test_budget_exceeded_is_402(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store, budget=1)
    async with serving(gateway, permitter) as base:
        def calls():
            c = client(base)
            c.completions.create(model=MODEL_NAME, prompt="x", max_tokens=2)
            with pytest.raises(openai.APIStatusError) as info:
                c.completions.create(model=MODEL_NAME, prompt="x", max_tokens=2)
            return info.value

        err = await in_thread(calls)
    assert err.status_code == 402 and err.body["code"] == "budget_exceeded"
    assert store.permit_count() == 1


async def test_bad_input_is_refused_before_any_permission(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    auth = {"authorization": f"Bearer {KEY}"}
    async with serving(gateway, permitter) as base, httpx.AsyncClient() as http:
        async def post(path: str, **kw) -> httpx.Response:
            return await http.post(base + path, headers={**auth, **kw.pop("headers", {})},
                                   **kw)

        cases = [
            (await post("/completions", content=b"{not json"), 400, None),
            (await post("/completions", content=b"x" * 5000), 400, "request_too_large"),
            (await post("/completions", json={"model": "other", "prompt": "x"}), 404,
             "model_not_found"),
            (await post("/completions", json={"model": MODEL_NAME, "prompt": "word " * 200}),
             400, "context_length_exceeded"),
            (await post("/chat/completions", json={"model": MODEL_NAME, "messages": []}),
             400, None),
            (await post("/completions", json={"model": MODEL_NAME, "prompt": "x",
                                              "max_tokens": 10_000}), 400, None),
            (await http.get(base + "/models"), 401, "invalid_api_key"),
            (await http.get(base + "/models/other", headers=auth), 404, "model_not_found"),
        ]
        ok = await http.get(base + f"/models/{MODEL_NAME}", headers=auth)
        health = await http.get(base.removesuffix("/v1") + "/health")
    for resp, status, code in cases:
        assert resp.status_code == status, resp.text
        err = resp.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
        if code is not None:
            assert err["code"] == code
    assert ok.json()["id"] == MODEL_NAME and health.text == "ok"
    assert owner.requests == [] and engine.runs == 0


async def test_an_engine_bug_is_a_500_and_the_gateway_keeps_serving(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    real = engine.inner.generate
    calls = {"n": 0}

    async def flaky(prepared):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA fell over")
        return await real(prepared)

    engine.inner.generate = flaky
    async with serving(gateway, permitter) as base, httpx.AsyncClient() as http:
        auth = {"authorization": f"Bearer {KEY}"}
        body = {"model": MODEL_NAME, "prompt": "x", "max_tokens": 2}
        first = await http.post(base + "/completions", headers=auth, json=body)
        second = await http.post(base + "/completions", headers=auth, json=body)
    assert first.status_code == 500 and first.json()["error"]["type"] == "server_error"
    assert second.status_code == 200


async def test_sse_wire_format(engine, store):
    """The raw stream: ``data: {json}\\n\\n`` events, then ``data: [DONE]``."""
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    async with serving(gateway, permitter) as base, httpx.AsyncClient() as http:
        async with http.stream("POST", base + "/chat/completions",
                               headers={"authorization": f"Bearer {KEY}"},
                               json={"model": MODEL_NAME, "stream": True, "max_tokens": 4,
                                     "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-oml-permission-seq"] == "0"
            raw = (await r.aread()).decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    bodies = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert bodies[0]["choices"][0]["delta"]["role"] == "assistant"
    assert bodies[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert len({b["id"] for b in bodies}) == 1


async def test_stop_sequences_cut_whole_and_streamed_answers_alike(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    async with serving(gateway, permitter) as base:
        def calls():
            c = client(base)
            full = c.completions.create(model=MODEL_NAME, prompt="the cat sat", max_tokens=12,
                                        temperature=0).choices[0].text
            stop = full[len(full) // 2:len(full) // 2 + 2]
            whole = c.completions.create(model=MODEL_NAME, prompt="the cat sat", max_tokens=12,
                                         temperature=0, stop=[stop]).choices[0]
            streamed = "".join(ch.choices[0].text for ch in c.completions.create(
                model=MODEL_NAME, prompt="the cat sat", max_tokens=12, temperature=0,
                stop=stop, stream=True))
            return full, stop, whole, streamed

        full, stop, whole, streamed = await in_thread(calls)
    assert len(full) >= 4, full
    assert whole.text == full[:full.index(stop)] == streamed
    assert whole.finish_reason == "stop"


async def test_a_client_that_leaves_a_stream_frees_the_model(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    gateway = make_gateway(engine, permitter, store)
    auth = {"authorization": f"Bearer {KEY}"}
    async with serving(gateway, permitter) as base, httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", base + "/completions", headers=auth,
                               json={"model": MODEL_NAME, "prompt": "x", "max_tokens": 32,
                                     "stream": True}) as r:
            async for _line in r.aiter_lines():
                break  # one event, then hang up
        with trio.fail_after(30):
            ok = await http.post(base + "/completions", headers=auth,
                                 json={"model": MODEL_NAME, "prompt": "y", "max_tokens": 2})
    assert ok.status_code == 200 and engine.runs == 2
