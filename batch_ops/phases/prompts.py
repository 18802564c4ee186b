"""Stable prompt prefixes: a phase's instructions, then the project's ticket conventions.

Every request of a job gets the same system blocks, byte for byte, and the ticket only in the user
message, so the prefix can be cached (see ``caching.py``). Conventions are built once per context.
"""

from __future__ import annotations

from typing import Any

from batch_ops.conventions import ticket_conventions
from batch_ops.errors import ConfigError
from batch_ops.phases.base import PhaseContext


def conventions(ctx: PhaseContext) -> str:
    cached = ctx.memo.get("conventions")
    if isinstance(cached, str):
        return cached
    text = ticket_conventions(ctx.config, ctx.scan)
    ctx.memo["conventions"] = text
    return text


def system_blocks(instructions: str, ctx: PhaseContext, *, with_conventions: bool = True) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": instructions}]
    if with_conventions:
        blocks.append({"type": "text", "text": conventions(ctx)})
    return blocks


def structured_params(
    ctx: PhaseContext,
    alias: str,
    max_tokens: int,
    system: list[dict[str, Any]],
    user: str,
    schema: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": ctx.config.price(alias).model,
        "max_tokens": max_tokens,
        "system": system,
        "messages": [{"role": "user", "content": user}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }


def routed_alias(ctx: PhaseContext, phase: str, default: str = "cheap") -> str:
    """``llmOps.modelRouting[phase]`` from the toolkit's config when it names a known alias."""
    routing = (ctx.config.llm_ops.model_extra or {}).get("modelRouting")
    alias = routing.get(phase) if isinstance(routing, dict) else None
    if isinstance(alias, str):
        try:
            ctx.config.price(alias)
            return alias
        except ConfigError:  # an alias batch-ops does not know: fall back rather than fail the phase
            return default
    return default
