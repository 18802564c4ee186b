"""Zero-token size estimates of requests, shared by the caching decision and the budget guard.

Nothing here calls a tokenizer: the estimate is ``ceil(characters / CHARS_PER_TOKEN)`` over the
parts of a request the API bills as input (tools, system, messages, output schema). English prose
and Markdown run close to four characters per token for Claude models; the estimate only has to be
good enough to decide whether a prefix clears a minimum and what a job might cost at most.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

CHARS_PER_TOKEN = 4.0


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tokens_for_chars(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _block_chars(block: Any) -> int:
    if isinstance(block, str):
        return len(block)
    if isinstance(block, dict) and block.get("type") == "text":
        return len(str(block.get("text", "")))
    if isinstance(block, dict):
        return len(_compact({k: v for k, v in block.items() if k != "cache_control"}))
    return 0


def _system_blocks(params: Mapping[str, Any]) -> list[Any]:
    system = params.get("system")
    if isinstance(system, str):
        return [system]
    return list(system) if isinstance(system, list) else []


def prefix_chars(params: Mapping[str, Any]) -> int:
    """Characters of the stable prefix: tools and system blocks (a phase keeps tickets out of them)."""
    tools = params.get("tools")
    chars = sum(_block_chars(t) for t in tools) if isinstance(tools, list) else 0
    return chars + sum(_block_chars(b) for b in _system_blocks(params))


def prompt_chars(params: Mapping[str, Any]) -> int:
    """Characters of everything billed as input: the prefix, the messages and the output schema."""
    chars = prefix_chars(params)
    messages = params.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                chars += sum(_block_chars(b) for b in content)
    config = params.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("format"), dict):
        chars += len(_compact(config["format"].get("schema", {})))
    return chars


def prefix_key(params: Mapping[str, Any]) -> str:
    """Identity of a request's prefix: requests with equal keys can share one cache entry."""
    stripped = [
        {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
        for b in _system_blocks(params)
    ]
    return _compact([params.get("model"), params.get("tools"), stripped])
