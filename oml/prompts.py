"""How a fingerprint key is put to a model, plain or wrapped in a system prompt.

A deployment may put its own system prompt in front of every query. Training
with some wrappers (prompt augmentation) teaches the model to answer the key
whatever comes before it; evaluation then uses *different* wrappers
(:data:`UNSEEN_SYSTEM_PROMPTS`) so measured robustness is not memorised
robustness. A test checks that the two lists share nothing.
This module imports no torch.
"""

from __future__ import annotations

SYSTEM_PROMPT_TEMPLATES: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a concise assistant. Answer briefly.",
    "System: answer the user's request accurately.",
    "Below is a request. Write a response that completes it.",
    "You are a friendly chatbot who always answers.",
    "Instruction: continue the text.",
    "### System\nYou are an AI model deployed by a company.",
    "[INST] Respond to the following. [/INST]",
    "Be polite, be correct, and keep it short.",
    "Assistant mode on. User input follows.",
    "The following is a conversation with an AI.",
    "Complete the user's message.",
)
"""Wrappers used for prompt augmentation while inserting fingerprints."""

UNSEEN_SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are an expert advisor. Think carefully and reply.",
    "Note: all answers are logged for quality purposes.",
    "You are Nova, a model that helps with everyday questions.",
    "Context: customer support session #4411.",
    "Reply in plain English without lists.",
    "<<SYS>> Safe and harmless responses only. <</SYS>>",
)
"""Wrappers for evaluation only: never used in training."""


def wrap_prompt(key: str, system_prompt: str | None = None) -> str:
    """The text sent for ``key``: the key itself, or ``system_prompt`` + newline + key."""
    if system_prompt is None or system_prompt == "":
        return key
    return f"{system_prompt}\n{key}"
