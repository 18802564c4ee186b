"""Part 1 of #7: every reader either returns a valid object or raises the project's own error.

Each property is seeded with the real shapes (see ``strategies.py``). The worst inputs found are
kept under ``tests/fixtures/hostile/`` and replayed by ``test_regressions.py``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from batch_ops.backlog import Ticket, parse_ticket, scan_backlog
from batch_ops.checks import validate_ticket
from batch_ops.cli import main
from batch_ops.config import DEFAULT_MODELS, Config, TicketValidation, load_config
from batch_ops.errors import BatchOpsError, ConfigError, TicketError
from batch_ops.ledger import LedgerProblem, iter_ledger, keys_for_batch
from batch_ops.paths import Layout
from batch_ops.phases.io import iter_settled
from batch_ops.queue import QueueStore, read_queue
from batch_ops.sandbox import SandboxServer
from batch_ops.triage import triage_ticket
from tests.hostile import strategies as s

RULES = TicketValidation(requireDependencyCheck=True)


def exercise_ticket(ticket: Ticket) -> None:
    """Everything later code asks of a ticket must work on whatever the parser let through."""
    json.dumps(ticket.front)  # payload meta and reports serialise it
    assert ticket.id and isinstance(ticket.id, str)
    _ = (ticket.title, ticket.status, ticket.priority)
    for key in s.FRONT_KEYS:
        ticket.list_field(key)
        ticket.number_field(key)
    ticket.acceptance_criteria()
    ticket.affected_files()
    ticket.verification_commands()
    for name in s.SECTIONS:
        ticket.section(name)
    validate_ticket(ticket, RULES)
    triage_ticket(ticket, RULES)


@given(s.ticket_bytes())
def test_ticket_reader_returns_a_ticket_or_a_ticket_error(raw: bytes) -> None:
    try:
        ticket = parse_ticket(raw, "backlog/data/pending/FEAT-001-x.md")
    except TicketError as exc:
        assert exc.path == "backlog/data/pending/FEAT-001-x.md"
        assert exc.reason and "\n" not in exc.reason
        return
    exercise_ticket(ticket)


@given(st.lists(s.ticket_bytes(), max_size=4), st.lists(s.short_text, max_size=4))
def test_scan_reports_bad_tickets_and_keeps_the_rest(raws: list[bytes], names: list[str]) -> None:
    good = (Path(__file__).parent.parent / "fixtures" / "hostile" / "tickets" / "good.md").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pending = root / "backlog/data/pending"
        pending.mkdir(parents=True)
        (pending / "GOOD-001-good.md").write_bytes(good)
        written = 1
        for i, raw in enumerate(raws):
            name = names[i] if i < len(names) else f"T-{i}"
            safe = "".join(c for c in name if c not in "/\x00") or "x"
            try:
                (pending / f"Z{i}-{safe[:40]}.md").write_bytes(raw)
            except (OSError, UnicodeEncodeError):
                (pending / f"Z{i}.md").write_bytes(raw)
            written += 1
        scan = scan_backlog(root)
        assert len(scan.tickets) + len(scan.problems) == written
        assert "GOOD-001" in scan.by_id()
        for problem in scan.problems:
            assert problem.path.startswith("backlog/data/pending/") and problem.reason
        for ticket in scan.tickets:
            exercise_ticket(ticket)


@given(s.config_bytes())
def test_config_reader_returns_a_config_or_one_problem_per_key_path(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "backlog.config.json").write_bytes(raw)
        try:
            config = load_config(root)
        except ConfigError as exc:
            assert exc.path.endswith("backlog.config.json")
            assert exc.problems
            for problem in exc.problems:
                where, _, reason = problem.partition(": ")
                assert where and reason, problem
            return
        assert isinstance(config, Config)
        _assert_finite(config)
        assert "\x00" not in config.backlog.data_dir
        assert not config.backlog.data_dir.startswith((".git", ".backlog-ops"))
        for alias in DEFAULT_MODELS:
            price = config.price(alias)
            assert math.isfinite(price.input_usd_per_mtok) and math.isfinite(price.output_usd_per_mtok)
        layout = Layout(root, config.backlog.data_dir)
        assert root.resolve() in layout.backlog_dir.resolve().parents or layout.backlog_dir.resolve() == root
        scan_backlog(root, config.backlog.data_dir)
        assert main(["triage", "--repo", str(root)]) == 0


def _assert_finite(value: object) -> None:
    """Every number batch-ops reads is finite (unknown keys belong to the toolkit and are left alone)."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _assert_finite(getattr(value, name))
    elif isinstance(value, float):
        assert math.isfinite(value), value
    elif isinstance(value, dict):
        for v in value.values():
            _assert_finite(v)
    elif isinstance(value, list):
        for v in value:
            _assert_finite(v)


def _nonblank(text: str) -> int:
    """Records are "\n"-separated (never splitlines(): U+2028 may sit inside a JSON string)."""
    return sum(1 for line in text.split("\n") if line.strip())


@given(s.queue_text())
def test_queue_reader_loads_jobs_or_quarantines_the_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp))
        layout.ops_dir.mkdir()
        layout.queue_file.write_text(text, encoding="utf-8", errors="surrogatepass")
        jobs, bad = read_queue(layout)
        assert len(jobs) + len(bad) == _nonblank(layout.queue_file.read_text(encoding="utf-8", errors="replace"))
        for job in jobs:
            for stored in (job.payload_path, job.result_path, job.report_path):
                if stored is not None:
                    layout.resolve_ops_path(stored)  # a loaded job never points outside .backlog-ops/
        with QueueStore(layout).locked() as queue:
            assert [j.id for j in queue.jobs] == [j.id for j in jobs]
            queue.save()
        again, still_bad = read_queue(layout)
        assert [j.id for j in again] == [j.id for j in jobs] and not still_bad
        if bad:
            kept = [json.loads(x)["text"] for x in layout.queue_quarantine.read_text().splitlines()]
            assert {b.text for b in bad} <= set(kept)
        assert main(["status", "--json", "--repo", tmp]) == 0


@given(s.ledger_bytes())
def test_ledger_reader_reports_problems_and_skips(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp))
        layout.ops_dir.mkdir()
        layout.ledger_file.write_bytes(raw)
        problems: list[LedgerProblem] = []
        lines = list(iter_ledger(layout.ledger_file, problems))
        text = raw.decode("utf-8", errors="replace")
        assert len(lines) + len(problems) == _nonblank(text)
        for line in lines:
            assert all(math.isfinite(v) for v in (line.cost_usd, line.interactive_cost_usd, line.savings_usd))
        keys_for_batch(layout.ledger_file, "job-1", "msgbatch_1")
        assert main(["status", "--json", "--repo", tmp]) == 0


@given(s.jsonl_lines(s.settled_record, ["btv-FEAT-1", "btv-FEAT-2", "", "../x"]))
def test_settled_results_reader_skips_what_does_not_parse(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.jsonl"
        path.write_bytes(raw)
        for res in iter_settled(path):
            assert res.status in ("succeeded", "failed")


@given(s.verdict_answers)
def test_validation_answer_is_parsed_or_refused_with_a_reason(text: str) -> None:
    from batch_ops.phases.base import OutputError
    from batch_ops.phases.validation import ValidationPhase, Verdict

    try:
        out = ValidationPhase().parse_output(text)
    except OutputError as exc:
        assert str(exc) and len(str(exc)) < 1000
        return
    Verdict.model_validate(out)
    assert isinstance(out["valid"], bool)


def _settle_repo(root: Path, result_lines: bytes, results_file: str = "results.jsonl") -> Layout:
    """A repository with one validation job whose only batch has ended and been downloaded.

    ``results_file``: ``results.jsonl`` holds ProviderResult lines, ``download.jsonl`` the API's own."""
    layout = Layout(root)
    (root / "backlog.config.json").write_text(
        json.dumps({"llmOps": {"batchPolicy": {"retryPolicy": {"maxRetries": 0}}}})
    )
    payload = layout.payloads_dir / "job-20260218-0001.jsonl"
    payload.parent.mkdir(parents=True)
    items = [
        {"custom_id": cid, "params": {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": []},
         "meta": {"ticket_id": cid[4:], "ticket_path": f"backlog/data/pending/{cid[4:]}.md", "content_hash": "h"}}
        for cid in ("btv-FEAT-1", "btv-FEAT-2")
    ]  # fmt: skip
    payload.write_text("".join(json.dumps(i) + "\n" for i in items))
    record = s.job_record("job-20260218-0001")
    record["batches"][0].update(status="downloaded", round=1, chunk=0)
    record["round_submitted"] = True
    layout.queue_file.write_text(json.dumps(record) + "\n")
    batch_dir = layout.results_dir / "job-20260218-0001"
    batch_dir.mkdir(parents=True)
    # The engine names a batch's files by round and chunk; the ids file says which requests it holds.
    (batch_dir / "r1-c0.ids").write_text("".join(i["custom_id"] + "\n" for i in items))
    (batch_dir / f"r1-c0.{results_file}").write_bytes(result_lines)
    return layout


@given(s.jsonl_lines(s.result_record, ["btv-FEAT-1", "btv-FEAT-2", "btv-OTHER-9", "", "../../x"]))
def test_reconcile_settles_a_results_file_with_broken_lines(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        layout = _settle_repo(root, raw)
        code = main(["reconcile", "--repo", str(root)])
        assert code == 0
        jobs, bad = read_queue(layout)
        assert not bad and jobs[0].terminal
        assert jobs[0].result_path is not None
        settled = list(iter_settled(layout.resolve_ops_path(jobs[0].result_path)))
        assert sorted(r.custom_id for r in settled) == ["btv-FEAT-1", "btv-FEAT-2"]
        for res in settled:
            assert (res.status == "succeeded") == (res.output is not None)


def test_budget_and_error_types_are_the_projects_own() -> None:
    """The properties above accept only these exceptions; keep them from widening silently."""
    assert issubclass(TicketError, BatchOpsError) and issubclass(ConfigError, BatchOpsError)


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(processing_seconds=0.0) as srv:
        yield srv


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=s.payload_bytes())
def test_submit_and_reconcile_a_damaged_payload(
    raw: bytes, shared_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payload edited by hand: the job is sent, or failed with the reason; the run goes on."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", shared_sandbox.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        layout = Layout(root)
        (root / "backlog.config.json").write_text(
            json.dumps({"llmOps": {"batchPolicy": {"retryPolicy": {"maxRetries": 0}}}})
        )
        layout.payloads_dir.mkdir(parents=True)
        (layout.payloads_dir / "job-20260218-0001.jsonl").write_bytes(raw)
        record = s.job_record("job-20260218-0001")
        record.update(status="queued", batches=[], attempts=0, round_submitted=False)
        layout.queue_file.write_text(json.dumps(record) + "\n")
        for command in ("submit", "reconcile", "reconcile", "status"):
            assert main([command, "--repo", tmp]) in (0, 2, 3, 4)
        jobs, bad = read_queue(layout)
        assert not bad and len(jobs) == 1
        job = jobs[0]
        if job.status == "failed":
            assert job.error
