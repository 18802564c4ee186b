"""Reading a job's payload file fast: the request to send and the ``meta`` beside it, per line.

The engine writes each payload line as compact JSON with the keys in a fixed order,
``{"custom_id": ..., "params": {...}, "meta": {...}}``. ``split_line`` uses that layout to cut a
line into the request JSON (the line without its ``meta``) and the ``meta`` JSON without parsing
``params``, which is most of the line's bytes. It checks what it relies on (the line opens with
``custom_id`` then ``params``, and the last top-level member is a ``meta`` object), and a line in
any other shape (a hand-edited payload, say) is parsed in full instead, so the result is the same.

Submit goes further (``parse_request_line``): it parses the whole line once, member by member, and
sends the request as the line's own bytes, so the bytes it sizes a batch by are the bytes it sends.

Why a cut cannot be fooled: inside a JSON string a quote is always escaped, so ``,"meta":`` can
only occur as structure; the last such occurrence either starts our top-level ``meta`` or lies
inside its value, and then the text after the decoded value is more than the one closing brace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

_DECODER = json.JSONDecoder()
_HEAD = '{"custom_id":'
_PARAMS = ',"params":'
_META = ',"meta":'


class PayloadItem(NamedTuple):
    custom_id: str
    request: str  # {"custom_id": ..., "params": ...}: what goes to the provider
    meta: str  # the meta object's JSON ("{}" when the line has none)
    ticket_id: str | None  # meta's ticket_id when it is a string


def split_line(raw: str) -> PayloadItem:
    """The parts of one payload line; raises ValueError (or KeyError) if the line is not a request."""
    line = raw.rstrip("\r\n")
    fast = _split_fast(line)
    if fast is not None:
        return fast
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("payload line is not a JSON object")
    custom_id = str(data["custom_id"])
    request = json.dumps({"custom_id": custom_id, "params": data["params"]}, separators=(",", ":"), ensure_ascii=False)
    meta = data.get("meta") or {}
    meta_json = json.dumps(meta, separators=(",", ":"), ensure_ascii=False)
    return PayloadItem(custom_id, request, meta_json, _ticket_id(meta))


def _split_fast(line: str) -> PayloadItem | None:
    if not line.startswith(_HEAD):
        return None
    try:
        custom_id, end = _DECODER.raw_decode(line, len(_HEAD))
    except ValueError:
        return None
    if not isinstance(custom_id, str) or not line.startswith(_PARAMS, end):
        return None
    cut = line.rfind(_META)
    if cut <= end:
        return None
    start = cut + len(_META)
    try:
        meta, meta_end = _DECODER.raw_decode(line, start)
    except ValueError:
        return None
    if not isinstance(meta, dict) or line[meta_end:].strip() != "}":
        return None
    return PayloadItem(custom_id, line[:cut] + "}", line[start:meta_end], _ticket_id(meta))


def _ticket_id(meta: object) -> str | None:
    value = meta.get("ticket_id") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


class PayloadMeta(NamedTuple):
    custom_id: str
    meta: str
    ticket_id: str | None


_HEAD_B = _HEAD.encode()
_META_B = _META.encode()
_PARAMS_B = _PARAMS.encode()


def iter_payload_meta(path: Path) -> Iterator[PayloadMeta]:
    """custom_id, meta JSON and ticket id of every request, without decoding the ``params`` text.

    Reads bytes and decodes only a line's head and its ``meta`` tail (the same checks as
    ``split_line``, which any other shape falls back to): joining 100,000 results with their
    payload no longer decodes 400 MB of prompts.
    """
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            line = raw.rstrip(b"\r\n")
            cut = line.rfind(_META_B)
            head_end = line.find(_PARAMS_B, len(_HEAD_B))
            if line.startswith(_HEAD_B) and 0 < head_end < cut:
                try:
                    custom_id, end = _DECODER.raw_decode(line[len(_HEAD_B) : head_end].decode("utf-8"))
                    tail = line[cut + len(_META_B) :].decode("utf-8")
                    meta, meta_end = _DECODER.raw_decode(tail)
                except ValueError:
                    custom_id = meta = None
                if (
                    isinstance(custom_id, str)
                    and end == head_end - len(_HEAD_B)
                    and isinstance(meta, dict)
                    and tail[meta_end:].strip() == "}"
                ):
                    yield PayloadMeta(custom_id, tail[:meta_end], _ticket_id(meta))
                    continue
            item = split_line(raw.decode("utf-8"))
            yield PayloadMeta(item.custom_id, item.meta, item.ticket_id)


def iter_payload(path: Path) -> Iterator[PayloadItem]:
    """Every request of a payload file, in file order, streamed."""
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            if raw.strip():
                yield split_line(raw)


# The head of a line in our layout whose custom_id is valid as it stands (the API's pattern needs
# no JSON escapes): ASCII, so its byte and character offsets agree.
_REQUEST_HEAD_B = re.compile(rb'\{"custom_id":"([a-zA-Z0-9_-]{1,64})","params":')


class RequestLine(NamedTuple):
    """One payload line in our layout, parsed once, with where its request sits in the line's bytes."""

    custom_id: str
    params: Any  # the parsed params, for the engine's checks and the cache-prefix key
    request_bytes: int  # the request is the line's first ``request_bytes`` bytes and a closing brace


def parse_request_line(raw: bytes) -> RequestLine | None:
    """Parse a payload line written in our layout; None for any other shape (parse it in full then).

    The whole line is parsed, member by member (custom_id, params, meta, then the closing brace,
    nothing else), so a line accepted here is valid JSON, a top-level object with exactly those
    members, and ``line[:request_bytes] + b"}"`` is exactly ``{"custom_id":...,"params":...}`` as
    the line spells it. Submit sends those bytes as they are: the request is not re-serialised,
    and the size planned is the size sent. Invalid UTF-8 is another shape (the full parse replaces
    it, as the engine always has).
    """
    line = raw.rstrip(b"\r\n")
    head = _REQUEST_HEAD_B.match(line)
    if head is None:
        return None
    try:
        text = line.decode("utf-8")
        params, end = _DECODER.raw_decode(text, head.end())
        if text.startswith(_META, end):
            meta, meta_end = _DECODER.raw_decode(text, end + len(_META))
            if not isinstance(meta, dict) or text[meta_end:] != "}":
                return None
        elif text[end:] != "}":
            return None
    except (ValueError, RecursionError):
        return None
    return RequestLine(head.group(1).decode("ascii"), params, len(line) - len(text[end:].encode("utf-8")))


# -- the meta index ------------------------------------------------------------------------------
#
# The reconcile's join needs only each request's custom_id and meta, but they sit at the two ends
# of payload lines of 4 KB or more: finding them read the whole payload (587 MB for 100,000
# requests) for 10 MB of metas. So enqueue writes, beside ``<job>.jsonl``, ``<job>.jsonl.meta``:
# one header line, then ``custom_id<TAB>meta JSON`` per request, the meta exactly as the payload
# line spells it. The header ties it to the payload (its size, mtime and sha256) and to its own
# body (sha256), so a payload edited by hand, a torn or edited index, or an index of another
# payload is never used: the join reads the payload itself then, as it always did.

META_INDEX_SUFFIX = ".meta"
_INDEX_FORMAT = 1
_INDEX_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# ItemMeta.model_dump_json() of a meta whose three fields are plain strings or null, in field order
# and with nothing else: the settle uses such text as it is (the engine writes metas so). The index
# says whether every meta it holds has this shape, so the join need not test 100,000 of them again.
CANONICAL_META = re.compile(
    r'\{"ticket_id":(?:null|"[^"\\\x00-\x1f]*"),"ticket_path":(?:null|"[^"\\\x00-\x1f]*"),'
    r'"content_hash":(?:null|"[^"\\\x00-\x1f]*")\}'
)


@dataclass(frozen=True, slots=True)
class IndexedMetas:
    """A checked meta index: its (custom_id, meta JSON) entries, streamed, in payload order.

    ``canonical``: every meta matched ``CANONICAL_META`` when the index was written (its body is
    the one its header hashed, so that still holds).
    """

    entries: Iterator[tuple[str, str]]
    canonical: bool

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.entries


def meta_index_path(payload: Path) -> Path:
    return payload.with_name(payload.name + META_INDEX_SUFFIX)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def write_payload(path: Path, records: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]) -> int:
    """Write a payload of (custom_id, params, meta) atomically, then its meta index; returns the count.

    The payload lines are ``{"custom_id":...,"params":...,"meta":...}`` compact and unescaped (the
    layout ``split_line`` and ``parse_request_line`` read). The index is written after the payload,
    so a crash between the two leaves a payload without an index, which the join reads in full.
    """
    from batch_ops.queue import atomic_write_text  # the queue's writer: fsynced, then renamed

    lines: list[str] = []
    metas: list[tuple[str, str]] = []
    for custom_id, params, meta in records:
        meta_json = _compact(meta)
        lines.append(_compact({"custom_id": custom_id, "params": params, "meta": meta}) + "\n")
        # json.dumps is compositional: the meta's own dump is the line's meta text, byte for byte.
        metas.append((custom_id, meta_json))
    text = "".join(lines)
    atomic_write_text(path, text)
    write_meta_index(path, metas, digest=hashlib.sha256(text.encode("utf-8")).hexdigest())
    return len(lines)


def write_meta_index(
    payload: Path, metas: Iterable[tuple[str, str]] | None = None, *, digest: str | None = None
) -> bool:
    """Write the meta index of ``payload`` (read from the payload when ``metas`` is None).

    False, and no index, when an entry cannot be written as one (a custom_id outside the API's
    pattern) or the payload does not read as requests: the join then reads the payload itself.
    """
    from batch_ops.queue import atomic_write_text

    index = meta_index_path(payload)
    try:
        entries = list(metas) if metas is not None else [(m.custom_id, m.meta) for m in iter_payload_meta(payload)]
        body = "".join(f"{cid}\t{meta}\n" for cid, meta in entries)
        if any(not _INDEX_CUSTOM_ID.fullmatch(cid) or "\n" in meta for cid, meta in entries):
            raise ValueError("not indexable")
        st = os.stat(payload)
        if digest is None:
            with open(payload, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except (OSError, ValueError, KeyError, RecursionError, UnicodeError):
        index.unlink(missing_ok=True)
        return False
    canonical = all(CANONICAL_META.fullmatch(meta) for _cid, meta in entries)
    header = {
        "format": _INDEX_FORMAT,
        "count": len(entries),
        "payload_bytes": st.st_size,
        "payload_mtime_ns": st.st_mtime_ns,
        "payload_sha256": digest,
        "body_sha256": _body_digest(body.encode("utf-8"), canonical).hexdigest(),
        "canonical": canonical,
    }
    atomic_write_text(index, _compact(header) + "\n" + body)
    return True


def read_meta_index(payload: Path, index: Path) -> IndexedMetas | None:
    """(custom_id, meta JSON) per payload line, in order, from the index; None unless it is the payload's.

    The index is used only if its body is the one its header hashed and the payload is the one it
    was written for: same size and mtime, or (a fresh checkout sets new mtimes) the same sha256,
    which costs one hash of the payload instead of a parse of every line. It is checked in one
    streamed pass and then read in a second: 100,000 entries are never held twice.
    """
    try:
        with open(index, "rb") as fh:
            header = json.loads(fh.readline())
            if type(header) is not dict or header.get("format") != _INDEX_FORMAT:
                return None
            canonical = header.get("canonical") is True
            digest = _body_digest(b"", canonical)
            lines = 0
            last = b"\n"
            while piece := fh.read(1 << 20):
                digest.update(piece)
                lines += piece.count(b"\n")
                last = piece[-1:]
            if digest.hexdigest() != header.get("body_sha256") or lines != header.get("count") or last != b"\n":
                return None
        st = os.stat(payload)
        if st.st_size != header.get("payload_bytes"):
            return None
        if st.st_mtime_ns != header.get("payload_mtime_ns"):
            with open(payload, "rb") as fh:
                if hashlib.file_digest(fh, "sha256").hexdigest() != header.get("payload_sha256"):
                    return None
    except (OSError, ValueError, RecursionError):
        return None
    return IndexedMetas(_index_entries(index), canonical)


def _body_digest(body: bytes, canonical: bool) -> hashlib._Hash:
    # The flag is hashed with the body: a header edited to call other metas canonical (which the
    # settle would then use unread) makes the index unusable instead, and the payload is read.
    digest = hashlib.sha256(b"canonical\n" if canonical else b"")
    digest.update(body)
    return digest


def _index_entries(index: Path) -> Iterator[tuple[str, str]]:
    # The body was checked against its hash just now (under the queue's lock): a line that does
    # not split is a file changed since, and the caller's join reports it as unreadable.
    with open(index, encoding="utf-8", newline="\n") as fh:
        fh.readline()
        for line in fh:
            cid, tab, meta = line.rstrip("\n").partition("\t")
            if not tab or not meta:
                raise ValueError(f"{index.name}: a line is not custom_id<TAB>meta")
            yield cid, meta
