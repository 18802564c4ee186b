"""The sandbox's stand-in model: deterministic answers, token estimates and prompt-cache prefixes.

Nothing here talks HTTP; it turns one request's ``params`` (the Messages API body) into content
blocks, a stop reason and token counts.

Answers
    * ``output_config.format`` of type ``json_schema`` (or the older ``output_format``): one text
      block whose text is compact JSON generated from the schema.
    * ``tools`` plus ``tool_choice`` ``{"type": "tool", "name": N}`` (or ``{"type": "any"}``, which
      picks the first tool): one ``tool_use`` block whose input is generated from that tool's
      ``input_schema``; stop reason ``tool_use``.
    * otherwise a short text reply built from words of the prompt.
    * a scripted override (scenario ``responses``: first ``match`` that is a substring of the prompt
      text wins) replaces the answer by its exact ``text``; for a forced tool the text is used as
      the tool input when it parses as a JSON object, else it is returned as a text block.

    Values are drawn from a generator seeded by sha256 of the canonical params JSON, so the same
    request always gets the same answer. Schema support: ``type`` (also a list of types), object
    (every property filled, ``required`` names without a property get a string, extra keys only
    from an ``additionalProperties`` schema), array (``items``, ``prefixItems``, ``minItems`` /
    ``maxItems``, 1-3 items by default, best-effort ``uniqueItems``), string (``enum``, ``const``,
    ``minLength`` / ``maxLength``, ``format`` date, date-time, time, email, uri, uuid, ipv4,
    hostname), integer / number (``minimum`` / ``maximum``, exclusive bounds, integer
    ``multipleOf``), boolean, null, ``anyOf`` / ``oneOf`` (first non-null branch), ``allOf``
    (merged), ``$ref`` to local JSON pointers (``#/$defs/...``, ``#/definitions/...``). Not
    supported: ``pattern``, ``if``/``then``, ``not``, ``dependentRequired``.

Token estimate (documented so tests and cost code can predict it)
    * prompt characters = tools (each tool as compact JSON without its ``cache_control``) + system
      text + message content (text, thinking, tool_use name + compact input JSON, tool_result
      text) + the output schema as compact JSON; images and other blocks count 0;
    * ``input tokens total = ceil(prompt characters / 4)``;
    * ``output_tokens = max(1, ceil(len(text or compact tool-input JSON) / 4))``, capped at
      ``max_tokens``; when capped, ``stop_reason`` is ``max_tokens`` and text is cut to
      ``max_tokens * 4`` characters (a tool_use block is kept whole).

Prompt caching
    A ``cache_control`` on a tool, a system block or a message content block is a breakpoint: the
    prefix is everything in order (tools, system, messages) up to and including that block, and its
    size is ``ceil(prefix characters / 4)``. The output schema comes last, so it is never cached.
    Breakpoints whose prefix is below the model's minimum cacheable length are ignored (see
    ``MIN_CACHEABLE``). Which tokens are written or read is decided by :class:`PromptCache`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIN_CACHEABLE: tuple[tuple[str, int], ...] = (
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4", 1024),
    ("claude-opus-4", 4096),
)
DEFAULT_MIN_CACHEABLE = 1024
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}

_WORD_RE = re.compile(r"[a-z]{3,}")
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "the and for with that this from are was were you your have has had not but all any can her his "
        "its our out she they them then than there these those what when where which who why will would "
        "shall should could into onto upon about also been being each more most other some such only "
        "very just over under again further once here how both few own same too does did doing",
    )
)
_FALLBACK_WORDS = ("sandbox", "sample", "value", "note", "update", "result", "detail", "summary", "item")
_MAX_DEPTH = 8
# Caps keep a hostile schema (minItems: 10**9) from exhausting the server's memory.
_MAX_ITEMS = 1000
_MAX_STRING = 100_000
_ID_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tokens_for(chars: int) -> int:
    return math.ceil(chars / 4)


def min_cacheable(model: str, overrides: Mapping[str, int]) -> int:
    """Longest matching prefix wins, scenario overrides before the built-in table."""
    for table in (sorted(overrides.items(), key=lambda kv: -len(kv[0])), MIN_CACHEABLE):
        for prefix, minimum in table:
            if model.startswith(prefix):
                return minimum
    return DEFAULT_MIN_CACHEABLE


def validate_params(params: Any) -> str | None:
    """The checks the real API makes when a batch request is finally processed; None when fine."""
    if not isinstance(params, dict):
        return "params: Input should be an object"
    model = params.get("model")
    if not isinstance(model, str) or not model:
        return "model: Field required"
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be a positive integer"
    messages = params.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), str | list):
            return f"messages.{i}.content: Field required"
    if params.get("stream"):
        return "stream: streaming is not supported by the sandbox"
    return None


@dataclass(frozen=True)
class Breakpoint:
    tokens: int
    key: str
    ttl: str


@dataclass(frozen=True)
class PromptInfo:
    text: str
    input_tokens: int
    breakpoints: tuple[Breakpoint, ...]


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "thinking":
        return str(block.get("thinking", ""))
    if kind == "tool_use":
        return str(block.get("name", "")) + compact(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return "\n".join(_block_text(b) for b in content)
        return str(content)
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            return str(source.get("data", ""))
    return ""


def _ttl_of(block: Any) -> str | None:
    if not isinstance(block, dict):
        return None
    marker = block.get("cache_control")
    if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
        return None
    return "1h" if marker.get("ttl") == "1h" else "5m"


def output_schema(params: Mapping[str, Any]) -> dict[str, Any] | None:
    for holder in (params.get("output_config"), {"format": params.get("output_format")}):
        if isinstance(holder, dict):
            fmt = holder.get("format")
            schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
            if isinstance(schema, dict):
                return schema
    return None


def analyze(params: Mapping[str, Any]) -> PromptInfo:
    """Walk the prompt in cache order, hashing the prefix so each breakpoint gets a stable key."""
    prefix = hashlib.sha256(str(params.get("model", "")).encode())
    chars = 0
    text_parts: list[str] = []
    breakpoints: list[Breakpoint] = []

    def feed(tag: str, piece: str, block: Any) -> None:
        nonlocal chars
        chars += len(piece)
        prefix.update(f"\x00{tag}\x00{len(piece)}\x00".encode())
        prefix.update(piece.encode())
        ttl = _ttl_of(block)
        if ttl is not None:
            breakpoints.append(Breakpoint(tokens_for(chars), prefix.copy().hexdigest(), ttl))

    tools = params.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            stripped = tool
            if isinstance(tool, dict):
                stripped = {k: v for k, v in tool.items() if k != "cache_control"}
            feed("tool", compact(stripped), tool)

    system = params.get("system")
    if isinstance(system, str):
        text_parts.append(system)
        feed("system", system, None)
    elif isinstance(system, list):
        for block in system:
            piece = _block_text(block)
            text_parts.append(piece)
            feed("system", piece, block)

    messages = params.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            role = str(message.get("role", ""))
            content = message.get("content")
            if isinstance(content, str):
                text_parts.append(content)
                feed(role, content, None)
            elif isinstance(content, list):
                for block in content:
                    piece = _block_text(block)
                    text_parts.append(piece)
                    feed(role, piece, block)

    schema = output_schema(params)
    if schema is not None:
        chars += len(compact(schema))
    return PromptInfo("\n".join(p for p in text_parts if p), tokens_for(chars), tuple(breakpoints))


class PromptCache:
    """Server-wide prompt cache: prefix key -> expiry time. Callers serialise access."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def clear(self) -> None:
        self._expiry.clear()

    def apply(self, info: PromptInfo, minimum: int, now: float) -> tuple[int, int, str]:
        """Return (read tokens, written tokens, ttl of the write) and record the prefixes.

        The longest live prefix is read; the span from it to the last eligible breakpoint is
        written, and every eligible prefix is (re)stamped, since a hit refreshes the entry.
        """
        eligible = [bp for bp in info.breakpoints if bp.tokens >= minimum]
        if not eligible:
            return 0, 0, "5m"
        read = max((bp.tokens for bp in eligible if self._expiry.get(bp.key, 0.0) > now), default=0)
        last = eligible[-1]
        written = max(0, last.tokens - read)
        for bp in eligible:
            self._expiry[bp.key] = max(self._expiry.get(bp.key, 0.0), now + TTL_SECONDS[bp.ttl])
        if len(self._expiry) > 100_000:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
        return read, written, last.ttl


def seed_of(params: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).digest()


def derived_id(prefix: str, *parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\x00")
    return prefix + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in h.digest()[:24])


def prompt_words(text: str) -> list[str]:
    # findall and fromkeys keep the scan in C: this runs once per result line of big batches.
    found = dict.fromkeys(_WORD_RE.findall(text[:50_000].lower()))
    words = [w for w in found if w not in _STOPWORDS][:500]
    return words or list(_FALLBACK_WORDS)


class SchemaGenerator:
    def __init__(self, root: Any, rng: random.Random, words: Sequence[str]) -> None:
        self._root = root
        self._rng = rng
        self._words = words

    def phrase(self, lo: int = 2, hi: int = 4) -> str:
        count = self._rng.randint(lo, hi)
        if count <= len(self._words):
            return " ".join(self._rng.sample(self._words, count))
        return " ".join(self._rng.choice(self._words) for _ in range(count))

    def generate(self, schema: Any = None, depth: int = 0) -> Any:
        return self._value(self._root if schema is None else schema, depth)

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self._root
        for raw in ref[1:].split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def _value(self, schema: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH * 8:
            # Only a self-referencing $ref chain gets here; stop rather than recurse forever.
            return None
        if schema is True or not isinstance(schema, dict):
            return self.phrase()
        if "$ref" in schema and isinstance(schema["$ref"], str):
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            target = self._resolve(schema["$ref"])
            merged = {**target, **siblings} if isinstance(target, dict) else siblings
            return self._value(merged, depth + 1)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            non_null = [v for v in enum if v is not None] or enum
            return self._rng.choice(non_null)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                pick = next((b for b in branches if not _is_null_schema(b, self._resolve)), branches[0])
                rest = {k: v for k, v in schema.items() if k != key}
                return self._value({**rest, **pick} if isinstance(pick, dict) else rest, depth + 1)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in all_of:
                if isinstance(part, dict):
                    if "$ref" in part and isinstance(part["$ref"], str):
                        resolved = self._resolve(part["$ref"])
                        part = resolved if isinstance(resolved, dict) else {}
                    merged = _merge(merged, part)
            return self._value(merged, depth + 1)

        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema or "required" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                kind = "string"
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self._rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        raw_required = schema.get("required")
        required = [r for r in raw_required if isinstance(r, str)] if isinstance(raw_required, list) else []
        out: dict[str, Any] = {}
        for name, sub in props.items():
            # Past the depth limit only required keys are filled, so recursive schemas terminate.
            if depth < _MAX_DEPTH or name in required:
                out[name] = self._value(sub, depth + 1)
        for name in required:
            if name not in out:
                out[name] = self.phrase()
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict) and depth < _MAX_DEPTH:
            for _ in range(self._rng.randint(1, 2)):
                out.setdefault(self._rng.choice(self._words), self._value(extra, depth + 1))
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix_items = schema.get("prefixItems")
        out: list[Any] = []
        if isinstance(prefix_items, list):
            out = [self._value(s, depth + 1) for s in prefix_items]
        min_items = _int_or(schema.get("minItems"), None)
        max_items = _int_or(schema.get("maxItems"), None)
        lo = min_items if min_items is not None else (0 if depth >= _MAX_DEPTH else 1)
        hi = max_items if max_items is not None else max(lo, 0 if depth >= _MAX_DEPTH else 3)
        lo, hi = min(lo, hi, _MAX_ITEMS), min(hi, _MAX_ITEMS)
        count = self._rng.randint(lo, hi) if depth < _MAX_DEPTH else lo
        items = schema.get("items")
        if items is False or (isinstance(prefix_items, list) and items is None):
            return out[: max(count, len(out))] if max_items is None else out[:max_items]
        unique = schema.get("uniqueItems") is True
        attempts = 0
        while len(out) < count and attempts < count * 10 + 10:
            attempts += 1
            value = self._value(items if items is not None else {}, depth + 1)
            if unique and value in out:
                continue
            out.append(value)
        return out

    def _integer(self, schema: dict[str, Any]) -> int:
        lo_f, hi_f = _bounds(schema)
        lo = math.ceil(lo_f) if lo_f is not None else None
        hi = math.floor(hi_f) if hi_f is not None else None
        if isinstance(schema.get("exclusiveMinimum"), int | float) and lo is not None and lo == lo_f:
            lo += 1
        if isinstance(schema.get("exclusiveMaximum"), int | float) and hi is not None and hi == hi_f:
            hi -= 1
        lo, hi = _default_range(lo, hi)
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first, last = math.ceil(lo / step), math.floor(hi / step)
            if first <= last:
                return self._rng.randint(first, last) * step
        return self._rng.randint(lo, hi) if lo <= hi else lo

    def _number(self, schema: dict[str, Any]) -> float:
        lo_f, hi_f = _bounds(schema)
        lo, hi = _default_range(lo_f, hi_f)
        value = round(self._rng.uniform(lo, hi), 2)
        value = min(max(value, lo), hi)
        if (isinstance(schema.get("exclusiveMinimum"), int | float) and value <= lo) or (
            isinstance(schema.get("exclusiveMaximum"), int | float) and value >= hi
        ):
            value = (lo + hi) / 2
        return float(value)

    def _string(self, schema: dict[str, Any]) -> str:
        rng = self._rng
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            # Only the format asked for draws from the generator: this runs per string of every answer.
            return self._formatted(fmt)
        text = self.phrase()
        min_len = min(_int_or(schema.get("minLength"), 0) or 0, _MAX_STRING)
        max_len = _int_or(schema.get("maxLength"), None)
        while len(text) < min_len:
            text += " " + rng.choice(self._words)
        if max_len is not None and len(text) > max_len:
            text = text[:max_len].rstrip() or text[:max_len]
        if len(text) < min_len:
            text += "x" * (min_len - len(text))
        return text


    def _formatted(self, fmt: str) -> str:
        rng = self._rng
        if fmt in ("date", "date-time"):
            date = f"{rng.randint(2024, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            if fmt == "date":
                return date
            return f"{date}T{self._clock()}Z"
        if fmt == "time":
            return f"{self._clock()}Z"
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if fmt == "ipv4":
            return f"192.0.2.{rng.randint(1, 254)}"
        word = rng.choice(self._words)
        return {
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "hostname": f"{word}.example.com",
        }[fmt]

    def _clock(self) -> str:
        rng = self._rng
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


_FORMATS = frozenset({"date", "date-time", "time", "email", "uri", "url", "uuid", "ipv4", "hostname"})


def _is_null_schema(schema: Any, resolve: Any) -> bool:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        schema = resolve(schema["$ref"])
    return isinstance(schema, dict) and (schema.get("type") == "null" or schema.get("const", 0) is None)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a, **b}
    if isinstance(a.get("properties"), dict) and isinstance(b.get("properties"), dict):
        out["properties"] = {**a["properties"], **b["properties"]}
    if isinstance(a.get("required"), list) and isinstance(b.get("required"), list):
        out["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
    return out


def _int_or(value: Any, default: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    def num(key: str) -> float | None:
        v = schema.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    lo, hi = num("minimum"), num("maximum")
    ex_lo, ex_hi = num("exclusiveMinimum"), num("exclusiveMaximum")
    if ex_lo is not None:
        lo = ex_lo if lo is None else max(lo, ex_lo)
    if ex_hi is not None:
        hi = ex_hi if hi is None else min(hi, ex_hi)
    return lo, hi


def _default_range(lo: Any, hi: Any) -> tuple[Any, Any]:
    if lo is None and hi is None:
        return 1, 100
    if lo is None:
        return hi - 100, hi
    if hi is None:
        return lo, lo + 100
    return lo, hi


@dataclass(frozen=True)
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    output_tokens: int


def _forced_tool(params: Mapping[str, Any]) -> dict[str, Any] | None:
    tools = params.get("tools")
    choice = params.get("tool_choice")
    if not isinstance(tools, list) or not isinstance(choice, dict):
        return None
    named = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if choice.get("type") == "tool":
        return next((t for t in named if t["name"] == choice.get("name")), None)
    if choice.get("type") == "any" and named:
        return named[0]
    return None


def respond(
    params: Mapping[str, Any],
    info: PromptInfo,
    overrides: Sequence[tuple[str, str]],
    seed: bytes,
) -> Reply:
    """The stand-in model's answer to one validated request."""
    rng = random.Random(int.from_bytes(seed[:16], "big"))
    words = prompt_words(info.text)
    max_tokens = int(params["max_tokens"])
    scripted = next((text for match, text in overrides if match in info.text), None)
    tool = _forced_tool(params)

    if tool is not None:
        tool_input: Any = None
        if scripted is not None:
            try:
                tool_input = json.loads(scripted)
            except ValueError:
                tool_input = None
            if not isinstance(tool_input, dict):
                return _text_reply(scripted, max_tokens)
        else:
            tool_input = _generate(tool.get("input_schema", {"type": "object"}), rng, words)
            if not isinstance(tool_input, dict):
                tool_input = {"value": tool_input}
        block = {
            "type": "tool_use",
            "id": derived_id("toolu_", seed, "tool"),
            "name": tool["name"],
            "input": tool_input,
        }
        needed = max(1, tokens_for(len(compact(tool_input))))
        if needed > max_tokens:
            return Reply([block], "max_tokens", max_tokens)
        return Reply([block], "tool_use", needed)

    if scripted is not None:
        return _text_reply(scripted, max_tokens)
    schema = output_schema(params)
    if schema is not None:
        return _text_reply(compact(_generate(schema, rng, words)), max_tokens)
    sentence = SchemaGenerator({}, rng, words).phrase(6, 12)
    return _text_reply(f"Sandbox reply: {sentence}.", max_tokens)


def _generate(schema: Any, rng: random.Random, words: Sequence[str]) -> Any:
    try:
        return SchemaGenerator(schema, rng, words).generate()
    except (RecursionError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # Batch counts already say "succeeded", so an odd schema must not break the results stream;
        # the answer is visibly wrong instead.
        return {"sandbox_error": f"cannot generate from this schema: {exc!r}"}


def _text_reply(text: str, max_tokens: int) -> Reply:
    needed = max(1, tokens_for(len(text)))
    if needed > max_tokens:
        return Reply([{"type": "text", "text": text[: max_tokens * 4]}], "max_tokens", max_tokens)
    return Reply([{"type": "text", "text": text}], "end_turn", needed)
