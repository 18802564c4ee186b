"""Benchmark data: generated backlogs, validation payloads built from their tickets, queue records.

Everything here is setup, done in the parent process and never timed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batch_ops.config import DEFAULT_MODELS
from batch_ops.paths import Layout
from batch_ops.phases.base import make_custom_id
from batch_ops.phases.validation import SYSTEM_PROMPT, ValidationPhase, _schema
from batch_ops.queue import BatchRef, JobRecord, QueueStore, iso, utcnow
from batch_ops.testing.ticketgen import generate_backlog

_ID_IN_NAME = re.compile(r"^([A-Z][A-Z0-9]*-\d+[a-z]?)")
MAX_BATCH_BYTES = 256 * 1024 * 1024
MAX_BATCH_REQUESTS = 100_000


def backlog(workdir: Path, name: str, n: int, *, duplicates: int = 0, seed: int = 7) -> Path:
    """A repository with ``n`` generated pending tickets (made once per work directory)."""
    root = workdir / name
    marker = root / ".bench-backlog.json"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    gen = generate_backlog(root, n, duplicates=duplicates, seed=seed)
    marker.write_text(json.dumps({"n": n, "pairs": gen.pairs}), encoding="utf-8")
    return root


def planted_pairs(root: Path) -> list[tuple[str, str]]:
    data = json.loads((root / ".bench-backlog.json").read_text(encoding="utf-8"))
    return [(a, b) for a, b in data["pairs"]]


def empty_repo(workdir: Path, name: str, config_from: Path, *, policy: dict[str, Any] | None = None) -> Path:
    """A repository with the config of ``config_from`` (optionally a changed batch policy) and no tickets."""
    root = workdir / name
    if root.exists():
        shutil.rmtree(root)
    (root / "backlog" / "data" / "pending").mkdir(parents=True)
    config = json.loads((config_from / "backlog.config.json").read_text(encoding="utf-8"))
    if policy:
        config["llmOps"]["batchPolicy"].update(policy)
    (root / "backlog.config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return root


def validation_lines(backlog_root: Path, limit: int | None = None) -> Iterator[str]:
    """Payload lines as the validation phase writes them, one per ticket file, for the ``cheap`` alias.

    Triage is not run here (figure 3 measures it): every ticket is treated as ``cheap-llm`` with no
    deterministic findings, so the prompt is the phase's own system prompt, schema and ticket text.
    """
    phase = ValidationPhase()
    schema = _schema()
    model = DEFAULT_MODELS["cheap"].model
    pending = backlog_root / "backlog" / "data" / "pending"
    for i, path in enumerate(sorted(pending.glob("*.md"))):
        if limit is not None and i >= limit:
            return
        raw = path.read_bytes()
        text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
        match = _ID_IN_NAME.match(path.name)
        ticket_id = match.group(1) if match else path.stem
        rel = path.relative_to(backlog_root).as_posix()
        user = f"Ticket file: {rel}\n\nDeterministic checks already found:\n- none\n\n<ticket>\n{text}\n</ticket>"
        line = {
            "custom_id": make_custom_id(phase.code, ticket_id),
            "params": {
                "model": model,
                "max_tokens": phase.max_output_tokens,
                "system": [{"type": "text", "text": SYSTEM_PROMPT}],
                "messages": [{"role": "user", "content": user}],
                "output_config": {"format": {"type": "json_schema", "schema": schema}},
            },
            "meta": {"ticket_id": ticket_id, "ticket_path": rel, "content_hash": hashlib.sha256(raw).hexdigest()},
        }
        yield json.dumps(line, separators=(",", ":"), ensure_ascii=False)


def write_payload(path: Path, lines: Iterator[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
            n += 1
    return n


def request_bytes(line: str) -> bytes:
    data = json.loads(line)
    return json.dumps({"custom_id": data["custom_id"], "params": data["params"]}, separators=(",", ":")).encode()


def chunk_sizes(payload: Path) -> list[tuple[int, int]]:
    """(requests, body bytes) of each batch the payload splits into under the API's limits."""
    chunks: list[tuple[int, int]] = []
    count = size = 0
    with open(payload, encoding="utf-8") as fh:
        for line in fh:
            n = len(request_bytes(line)) + 1
            if count and (count >= MAX_BATCH_REQUESTS or size + n + 64 > MAX_BATCH_BYTES):
                chunks.append((count, size))
                count = size = 0
            count += 1
            size += n
    if count:
        chunks.append((count, size))
    return chunks


def body_parts(payload: Path, part_bytes: int = 1 << 20) -> Iterator[bytes]:
    """A batch-create body for every request of a payload, in pieces (for a chunked upload)."""
    pending: list[bytes] = [b'{"requests":[']
    size = 0
    first = True
    with open(payload, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            piece = request_bytes(line)
            pending.append(piece if first else b"," + piece)
            first = False
            size += len(piece)
            if size >= part_bytes:
                yield b"".join(pending)
                pending, size = [], 0
    pending.append(b"]}")
    yield b"".join(pending)


def add_job(
    repo: Path,
    payload_name: str,
    request_count: int,
    *,
    job_id: str,
    batch_id: str | None = None,
    phase: str = "bulk-ticket-validation",
) -> JobRecord:
    """Record a job whose payload is already in place; with ``batch_id``, as submitted in one batch.

    The payload gets the meta index the engine's enqueue writes beside every payload it writes
    (``payload.write_payload``), so the job is in the state an enqueued job is in.
    """
    from batch_ops.payload import write_meta_index

    layout = Layout(root=repo)
    write_meta_index(layout.root / ".backlog-ops" / "payloads" / payload_name)
    now = iso(utcnow())
    job = JobRecord(
        id=job_id,
        workflow=phase,
        phase=phase,
        payload_path=f".backlog-ops/payloads/{payload_name}",
        model_alias="cheap",
        created_at=now,
        updated_at=now,
        request_count=request_count,
    )
    if batch_id is not None:
        job.batches.append(
            BatchRef(
                id=batch_id,
                request_count=request_count,
                status="in_progress",
                create_attempts=1,
                intent_at=now,
                submitted_at=now,
            )
        )
        job.round_submitted = True
        job.transition("submitted")
        job.attempts = 1
    if batch_id is not None:
        # The engine keeps each batch's custom_ids beside the job; its own method names the file.
        from batch_ops.config import load_config
        from batch_ops.engine import Engine
        from batch_ops.payload import iter_payload_meta

        engine = Engine(layout, load_config(repo), {})
        ids_path = engine._ref_file(job, job.batches[0], "ids")
        ids_path.parent.mkdir(parents=True, exist_ok=True)
        payload = layout.root / job.payload_path
        ids_path.write_text("".join(m.custom_id + "\n" for m in iter_payload_meta(payload)), encoding="utf-8")
    with QueueStore(layout).locked() as queue:
        queue.add(job)
        queue.save()
    return job
