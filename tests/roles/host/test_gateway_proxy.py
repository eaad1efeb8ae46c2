"""Proxy mode: the gateway in front of another OpenAI-compatible server.

The upstream is a second gateway serving the same tiny model bare (no
permission layer, no keys), as ``oml-node host engine`` does; the front
gateway keeps keys, limits and permissions and forwards with httpx.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from node.roles.host.apikeys import KeyRing, UsageBook
from node.roles.host.app import Gateway
from node.roles.host.proxy import ProxyEngine
from node.roles.host.store import HostStore
from node.roles.owner.protocol import Refusal

from .gwkit import KEY, LIMITS, MODEL_NAME, FakeOwner, make_gateway, make_permitter, serving
from .test_gateway_http import assert_permitted, client, in_thread

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def store(tmp_path: Path):
    s = HostStore.open(tmp_path / "host")
    yield s
    s.close()


def bare(engine) -> Gateway:
    return Gateway(engine=engine, model_name=MODEL_NAME, permits=None,
                   keys=KeyRing([], require=False), usage=UsageBook(None), limits=LIMITS)


async def test_proxy_answers_like_the_upstream_with_permissions_in_front(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    async with serving(bare(engine)) as upstream:
        proxy = ProxyEngine(upstream)
        front = make_gateway(proxy, permitter, store)
        async with serving(front, permitter) as base:
            def calls():
                direct = client(upstream, "unused")
                c = client(base)
                want = direct.completions.create(model=MODEL_NAME, prompt="the dog",
                                                 max_tokens=5, temperature=0)
                got = c.completions.create(model=MODEL_NAME, prompt="the dog", max_tokens=5,
                                           temperature=0)
                chat = c.chat.completions.create(
                    model=MODEL_NAME, max_tokens=5, temperature=0,
                    messages=[{"role": "user", "content": "a question"}])
                chunks = list(c.chat.completions.create(
                    model=MODEL_NAME, max_tokens=5, temperature=0, stream=True,
                    stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": "a question"}]))
                return want, got, chat, chunks

            want, got, chat, chunks = await in_thread(calls)
        await proxy.aclose()
    assert got.choices[0].text == want.choices[0].text
    assert got.usage.model_dump() == want.usage.model_dump()
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == chat.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    assert_permitted(store, "the dog")
    assert_permitted(store, "a question")
    assert engine.runs == 4  # one direct call + three through the proxy
    assert front.usage.get("alice").requests == 3


async def test_proxy_refusal_never_reaches_the_upstream(engine, store):
    owner = FakeOwner(refuse=Refusal.HOST_NOT_ACTIVE)
    permitter = make_permitter(store, owner)
    async with serving(bare(engine)) as upstream:
        proxy = ProxyEngine(upstream)
        async with serving(make_gateway(proxy, permitter, store), permitter) as base:
            def call():
                with pytest.raises(openai.APIStatusError) as info:
                    client(base).chat.completions.create(
                        model=MODEL_NAME, messages=[{"role": "user", "content": "q"}])
                return info.value

            err = await in_thread(call)
        await proxy.aclose()
    assert err.status_code == 402 and err.body["code"] == "host_not_active"
    assert engine.runs == 0


async def test_upstream_errors(engine, store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner)
    async with serving(bare(engine)) as upstream:
        # the upstream knows its model by another name: its 404 comes through as it is
        misnamed = ProxyEngine(upstream, upstream_model="no-such-model")
        async with serving(make_gateway(misnamed, permitter, store), permitter) as base:
            def call():
                with pytest.raises(openai.NotFoundError) as info:
                    client(base).completions.create(model=MODEL_NAME, prompt="x")
                return info.value

            err = await in_thread(call)
        await misnamed.aclose()
    assert err.body["code"] == "model_not_found"
    # an upstream that is gone: 502, and the gateway keeps serving
    gone = ProxyEngine(upstream)
    async with serving(make_gateway(gone, permitter, store), permitter) as base:
        def call_gone():
            with pytest.raises(openai.APIStatusError) as info:
                client(base, KEY).completions.create(model=MODEL_NAME, prompt="x")
            with pytest.raises(openai.APIStatusError) as again:
                client(base, KEY).completions.create(model=MODEL_NAME, prompt="x", stream=True)
            return info.value, again.value

        first, second = await in_thread(call_gone)
    await gone.aclose()
    assert first.status_code == 502 and first.body["code"] == "upstream_error"
    assert second.status_code == 502  # streamed: the status still tells, nothing was sent yet
