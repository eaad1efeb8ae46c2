"""A tiny OpenAI-compatible server for prover tests: answers each prompt from a table.

Real HTTP (starlette served by hypercorn on 127.0.0.1 port 0, like the
gateway's tests), so the prover's client is exercised as against any
deployment. ``answer(prompt, call_no)`` decides the text; the server
records every request it got.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from node.rpc.server import serve_app

Answer = Callable[[str, int], str]


@dataclass
class FakeDeployment:
    """One served model; ``requests`` holds every JSON body received."""

    model: str
    answer: Answer
    api_key: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    def _authorised(self, request: Request) -> bool:
        return not self.api_key or \
            request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def models(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return JSONResponse({"error": {"message": "no key"}}, status_code=401)
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def completions(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return JSONResponse({"error": {"message": "no key"}}, status_code=401)
        body = await request.json()
        self.requests.append(body)
        if "messages" in body:
            prompt = body["messages"][-1]["content"]
        else:
            prompt = body["prompt"]
        text = self.answer(prompt, len(self.requests))
        if "messages" in body:
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
        return JSONResponse({"id": "x", "object": "text_completion", "model": self.model,
                             "choices": [choice]})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/models", self.models),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.completions, methods=["POST"]),
        ])


@asynccontextmanager
async def serving(*deployments: FakeDeployment) -> AsyncIterator[list[str]]:
    """Serve each deployment on its own port; yields their OpenAI base URLs (``.../v1``)."""
    async with trio.open_nursery() as nursery:
        urls = []
        for d in deployments:
            bound = await nursery.start(functools.partial(serve_app, d.app(), "127.0.0.1:0"))
            urls.append(bound[0] + "/v1")
        yield urls
        nursery.cancel_scope.cancel()
