"""The prover's OpenAI client against the real host gateway (a tiny real model, bare engine).

The gateway is what an honest host serves and what a sibling reference
is; the prover must read its model list, pass its API key, and get the
same greedy answer twice through both APIs, with the key as the query
text the gateway would buy a permission for.
"""

from __future__ import annotations

import functools
from pathlib import Path

import httpx
import pytest
import trio

from node.roles.prover.client import ApiSettings, ProbeError, ask, served_models
from node.rpc.server import serve_app

KEY = "amber quiet river stone"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    from oml.modelio import load_model
    from oml.testing import make_tiny_model_dir

    path = make_tiny_model_dir(tmp_path_factory.mktemp("prover-gw") / "m", seed=0,
                               pretrain_steps=0)
    return load_model(Path(path), "cpu")


async def test_prover_client_speaks_to_the_real_gateway(tiny: tuple[object, object]) -> None:
    from node.roles.host.apikeys import ApiKey, KeyRing, UsageBook
    from node.roles.host.app import Gateway, Limits
    from node.roles.host.engine import TransformersEngine

    model, tok = tiny
    gateway = Gateway(engine=TransformersEngine(model, tok, max_prompt_tokens=64),
                      model_name="tiny-served", permits=None,
                      keys=KeyRing([("sk-prover", ApiKey("prover", 0, 0))]),
                      usage=UsageBook(None), limits=Limits(max_body_bytes=4096,
                                                           max_new_tokens=16))
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
            (url,) = await nursery.start(functools.partial(serve_app, gateway.app(),
                                                           "127.0.0.1:0"))
            base = url + "/v1"
            outputs = {}
            for api in ("completions", "chat"):
                settings = ApiSettings(api=api, max_tokens=8, api_key="sk-prover",
                                       timeout_s=60)
                assert await served_models(http, base, settings) == ["tiny-served"]
                first = await ask(http, base, "tiny-served", KEY, settings)
                assert first and await ask(http, base, "tiny-served", KEY, settings) == first
                outputs[api] = first
            with pytest.raises(ProbeError) as refused:
                await ask(http, base, "tiny-served", KEY,
                          ApiSettings(api_key="sk-wrong", timeout_s=60))
            nursery.cancel_scope.cancel()
    # a model without a chat template: one user message is the key itself
    assert outputs["chat"] == outputs["completions"]
    assert refused.value.outcome == "http_error" and "401" in str(refused.value)
