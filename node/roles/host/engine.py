"""Engines behind the gateway: the in-process transformers model (the default).

An engine turns a parsed request into text. The gateway calls
:meth:`Engine.prepare` first (tokenise, check the prompt against
``max_prompt_tokens`` and the model's context: an oversized prompt is
refused *before* a permission is bought), then -- with a stored permission --
:meth:`Engine.generate` or :meth:`Engine.stream`.

The transformers engine loads the host's fetched model folder with
:func:`oml.modelio.load_model` (CUDA when present), tokenises a completion's
prompt exactly as fingerprinting did (:func:`oml.decoding.prompt_ids`, the
tokenizer's special tokens then the text), so a fingerprint key sent through
the API meets the model as it did in training, and decodes the completion
with :func:`oml.decoding.completion_text`. Generation runs in a worker
thread (trio keeps serving): one :class:`EngineThread` per model, one
generation at a time.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import outcome
import trio

from .openai_api import ApiError, GenRequest, apply_stop, bad_request, render_chat_plain


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request checked and tokenised by its engine (``ids`` empty in proxy mode)."""

    req: GenRequest
    prompt_tokens: int
    ids: tuple[int, ...] = ()
    max_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """``stop`` (EOS or a stop sequence) or ``length``."""


Emit = Callable[[str], Awaitable[None]]


class Engine(Protocol):
    """What the gateway needs of an engine; proxy and transformers engines implement it."""

    async def prepare(self, req: GenRequest) -> Prepared:
        """Check and tokenise. Raises ApiError (400 when the prompt is too long)."""
        ...

    async def generate(self, prepared: Prepared) -> Generation: ...

    async def stream(self, prepared: Prepared, emit: Emit) -> Generation:
        """Hand text pieces to ``emit`` as they are produced; returns the whole generation."""
        ...

    async def aclose(self) -> None: ...


def too_long(tokens: int, limit: int, what: str) -> ApiError:
    return bad_request(f"This model's maximum {what} is {limit} tokens; the prompt has "
                       f"{tokens} tokens.", "messages", code="context_length_exceeded")


class EngineThread:
    """One long-lived worker thread that runs every generation of a model.

    Why not ``trio.to_thread``: torch keeps per-thread state (its OpenMP team,
    caches); handing each generation to whichever cached thread trio picks
    made a one-token generation of a tiny model take 15-50 ms instead of 3 ms
    on the 2-core test machine. One thread, one queue: generations also run
    strictly one at a time, in arrival order.
    """

    def __init__(self, name: str = "oml-engine") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the engine thread. Not abandoned when cancelled: the
        caller waits for it (a model must not run on past its lock)."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []

        def job() -> None:
            box.append(outcome.capture(fn, *args))
            token.run_sync_soon(done.set)

        self._pool.submit(job)
        with trio.CancelScope(shield=True):
            await done.wait()
        return box[0].unwrap()

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class _Controls:
    """Streamer + stopping criterion handed to ``model.generate`` in the engine thread."""

    def __init__(self, send: trio.MemorySendChannel[list[int]] | None) -> None:
        self._send = send
        self._token = trio.lowlevel.current_trio_token()
        self._skipped_prompt = False
        self.stop = False

    # transformers' BaseStreamer interface
    def put(self, value: Any) -> None:
        if not self._skipped_prompt:  # generate() first puts the prompt itself
            self._skipped_prompt = True
            return
        if self._send is not None:
            ids = [int(t) for t in value.reshape(-1).tolist()]
            self._token.run_sync_soon(self._deliver, ids)

    def _deliver(self, ids: list[int]) -> None:
        """In the trio thread; an error here would crash trio, so a gone reader is ignored."""
        if self._send is None:
            return
        try:
            self._send.send_nowait(ids)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.stop = True

    def end(self) -> None:
        return None

    # transformers' StoppingCriteria interface
    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.stop, dtype=torch.bool,
                          device=input_ids.device)


class TransformersEngine:
    """The host's fetched model, in this process."""

    def __init__(self, model: Any, tokenizer: Any, *, max_prompt_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        cfg = getattr(model, "config", None)
        self.context = int(getattr(cfg, "max_position_embeddings", 0) or 0) or None
        self._lock = trio.Lock()
        self._thread = EngineThread()

    @classmethod
    async def load(cls, model_dir: Path, *, device: str | None, max_prompt_tokens: int
                   ) -> TransformersEngine:
        """Load ``model_dir`` in a worker thread (seconds to minutes for a real model)."""
        from oml.modelio import load_model

        dev = None if device in (None, "", "auto") else device
        model, tok = await trio.to_thread.run_sync(load_model, model_dir, dev)
        return cls(model, tok, max_prompt_tokens=max_prompt_tokens)

    # ------------------------------------------------------------------ prepare

    def _prompt_ids(self, req: GenRequest) -> list[int]:
        from oml.decoding import prompt_ids

        tok = self.tokenizer
        if req.kind == "completion":
            return prompt_ids(tok, [req.prompt])[0]
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": m.role, "content": m.content}
                                            for m in req.messages],
                                           tokenize=False, add_generation_prompt=True)
            return list(tok(text, add_special_tokens=False)["input_ids"])
        return prompt_ids(tok, [render_chat_plain(req.messages)])[0]

    async def prepare(self, req: GenRequest) -> Prepared:
        ids = self._prompt_ids(req)
        if len(ids) > self.max_prompt_tokens:
            raise too_long(len(ids), self.max_prompt_tokens, "prompt length")
        max_tokens = req.max_tokens
        if self.context is not None:
            if len(ids) >= self.context:
                raise too_long(len(ids), self.context, "context length")
            max_tokens = min(max_tokens, self.context - len(ids))
        return Prepared(req=req, prompt_tokens=len(ids), ids=tuple(ids), max_tokens=max_tokens)

    # ------------------------------------------------------------------ generate

    def _run(self, prepared: Prepared, controls: _Controls) -> list[int]:
        """``model.generate`` in the worker thread; returns the new token ids (no EOS)."""
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        from oml.decoding import model_device, pad_id_of

        req = prepared.req
        tok = self.tokenizer
        dev = model_device(self.model)
        ids = torch.tensor([list(prepared.ids)], dtype=torch.long, device=dev)
        mask = torch.ones_like(ids)
        kw: dict[str, Any] = {"max_new_tokens": prepared.max_tokens,
                              "pad_token_id": pad_id_of(tok), "eos_token_id": tok.eos_token_id,
                              "bos_token_id": tok.bos_token_id}
        if req.greedy:
            kw["do_sample"] = False
        else:
            kw.update(do_sample=True, temperature=req.temperature, top_p=req.top_p, top_k=0)
            if req.seed is not None:
                torch.manual_seed(req.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask,
                                      generation_config=GenerationConfig(**kw),
                                      streamer=controls,
                                      stopping_criteria=StoppingCriteriaList([controls]))
        new = out[0, ids.shape[1]:].tolist()
        eos = tok.eos_token_id
        if eos is not None and eos in new:
            new = new[:new.index(eos)]
        return new

    def _text(self, prepared: Prepared, new: list[int]) -> str:
        from oml.decoding import completion_text

        return completion_text(self.tokenizer, list(prepared.ids), new)

    async def generate(self, prepared: Prepared) -> Generation:
        controls = _Controls(None)
        async with self._lock:
            new = await self._thread.run(self._run, prepared, controls)
        text, stopped = apply_stop(self._text(prepared, new), prepared.req.stop)
        eos_seen = len(new) < prepared.max_tokens
        return Generation(text, prepared.prompt_tokens, len(new),
                          "stop" if stopped or eos_seen else "length")

    async def stream(self, prepared: Prepared, emit: Emit) -> Generation:
        """Hand text to ``emit`` as it is decoded; returns the whole generation.

        Holds back what may be the start of a stop sequence, and text that
        ends in an incomplete UTF-8 character. Cancelled (the client went
        away), it tells the model to stop at its next token and waits for
        the worker thread, so the lock is never released under a running model.
        """
        stops = prepared.req.stop
        hold = max((len(s) for s in stops), default=1) - 1
        send, receive = trio.open_memory_channel[list[int]](math.inf)
        controls = _Controls(send)
        new: list[int] = []
        sent = 0
        stopped = False

        async def worker() -> None:
            try:
                await self._thread.run(self._run, prepared, controls)
            finally:
                controls.stop = True
                await send.aclose()

        async with self._lock, trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            try:
                async for ids in receive:
                    if stopped:
                        continue  # the worker is finishing its last step
                    eos = self.tokenizer.eos_token_id
                    new.extend(i for i in ids if i != eos)
                    text, stopped = apply_stop(self._text(prepared, new), stops)
                    if stopped:
                        controls.stop = True
                        upto = len(text)
                    else:
                        upto = len(text) - hold
                        if text.endswith("\ufffd"):
                            upto = min(upto, len(text.rstrip("\ufffd")))
                    if upto > sent:
                        await emit(text[sent:upto])
                        sent = upto
            finally:
                controls.stop = True
        text, stopped = apply_stop(self._text(prepared, new), stops)
        if len(text) > sent:
            await emit(text[sent:])
        eos_seen = len(new) < prepared.max_tokens
        return Generation(text, prepared.prompt_tokens, len(new),
                          "stop" if stopped or eos_seen else "length")

    async def aclose(self) -> None:
        self._thread.close()


__all__ = ["Engine", "Generation", "Prepared", "TransformersEngine", "too_long"]
