"""The four phases end to end on the sample backlog: real CLI, real SDK, the sandbox as the API."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from batch_ops.backlog import parse_ticket, scan_backlog
from batch_ops.config import load_config
from batch_ops.costs import summarize
from batch_ops.ledger import iter_ledger
from batch_ops.paths import Layout
from batch_ops.phases.base import ItemMeta, PhaseContext, SettledResult
from batch_ops.phases.refinement import RefinementPhase, load_state
from batch_ops.queue import read_queue
from batch_ops.sandbox import SandboxServer
from batch_ops.triage import triage

PLANTED = {("FEAT-012", "FEAT-019"), ("BUG-031", "BUG-037"), ("FEAT-024", "IDEA-006")}
PENDING = "backlog/data/pending"
WAIT = ("--wait", "--poll", "0.1", "--timeout", "60")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def _snapshot(repo: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((repo / PENDING).glob("*.md"))}


def test_cycle_runs_all_four_phases_and_refines_only_the_sections_it_owns(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    _git(sample_repo, "init", "-q")
    _git(sample_repo, "add", "-A")
    _git(sample_repo, "commit", "-qm", "sample")
    before = _snapshot(sample_repo)
    res = cli(sample_repo, "cycle", *WAIT)
    assert res.code == 0, res.err + res.out
    layout = Layout(sample_repo)
    jobs, _ = read_queue(layout)
    assert {j.phase for j in jobs} == {"bulk-ticket-validation", "refinement", "duplicate-detection", "cost-report"}
    assert all(j.status == "completed" for j in jobs)

    # Refinement: only the listed sections, `updated` and one History row changed; front matter intact.
    state = load_state_for(sample_repo)
    refined = {r.path.rsplit("/", 1)[-1]: r for r in state.values() if r.outcome == "refined"}
    assert {r.ticket_id for r in refined.values()} >= {"IDEA-006", "FEAT-035", "SEC-002", "TASK-014"}
    after = _snapshot(sample_repo)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == set(refined)
    for name in changed:
        old = parse_ticket(before[name], name)
        new = parse_ticket(after[name], name)
        assert new.front == {**old.front, "updated": new.front["updated"]}
        owned = {s.lower() for s in refined[name].sections} | {"history"}
        for sec in old.sections:
            if sec.heading.lower() not in owned:
                assert new.section(sec.heading) == sec.body, (name, sec.heading)
        history = new.section("History") or ""
        assert history.startswith(old.section("History") or "") and history.count("batch-ops") == 1
    # FEAT-035 asks for `priority: critical`; it stays low.
    assert parse_ticket(after["FEAT-035-referral-discount-codes.md"], "x").front["priority"] == "low"
    diff = _git(sample_repo, "diff", "--stat")
    assert "FEAT-018" not in diff  # latin-1: never rewritten
    # Duplicates: the planted pairs are named, with a verdict from the model.
    rows = json.loads((layout.reports_dir / "duplicates.json").read_text())
    named = {(r["a"], r["b"]) for r in rows}
    assert named >= PLANTED
    assert all(r["status"] == "judged" for r in rows if (r["a"], r["b"]) in PLANTED)
    assert "FEAT-012 / FEAT-019" in (layout.reports_dir / "duplicates.md").read_text()
    # Cost report: numbers, the Mermaid chart, the caching decisions and the model's analysis.
    cost_md = (layout.reports_dir / "cost.md").read_text()
    assert "```mermaid\nxychart-beta" in cost_md and "## Analysis" in cost_md and "### Caching decisions" in cost_md
    # The bar: ledger total below half of the same tokens run interactively without a cache.
    totals = summarize(layout, load_config(sample_repo)).totals
    assert totals["cost_usd"] < 0.5 * totals["uncached_interactive_cost_usd"]
    report = cli(sample_repo, "report", "--json")
    data = json.loads(report.out)
    # Laid out as json.dumps(indent=2) lays out the summary's model_dump (JSON mode), keys in that order.
    assert report.out == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert list(data) == [*summarize(layout, load_config(sample_repo)).model_dump(mode="json"), "budget", "report_path"]
    assert report.code == 0 and data["totals"]["requests"] == sum(j.request_count for j in jobs)
    assert {r["mode"] for r in data["by_mode"]} == {"batch", "interactive"}  # the cost report alone is under 5


def load_state_for(repo: Path) -> dict[str, Any]:
    config = load_config(repo)
    scan = scan_backlog(repo)
    return load_state(PhaseContext(Layout(repo), config, scan, triage(scan.pending, config.ticket_validation)))


def test_cached_jobs_write_once_then_read_and_the_ledger_prices_both(cli: Any, sample_repo: Path) -> None:
    assert cli(sample_repo, "cycle", "--phase", "duplicate-detection", *WAIT).code == 0
    jobs, _ = read_queue(Layout(sample_repo))
    (job,) = jobs
    assert job.cache is not None and job.cache.enabled and job.cache.ttl == "1h"  # no batch history yet
    lines = list(iter_ledger(Layout(sample_repo).ledger_file))
    writes = [line for line in lines if line.cache_creation_input_tokens]
    reads = [line for line in lines if line.cache_read_input_tokens]
    assert len(writes) == 1 and len(reads) == len(lines) - 1
    assert reads[0].cache_read_input_tokens == writes[0].cache_creation_input_tokens >= 4096
    # Priced at their own rates: a read costs a tenth of input, a 1-hour write twice, both halved in batch.
    r = reads[0]
    expected = (r.input_tokens + 0.1 * r.cache_read_input_tokens + 5 * r.output_tokens) / 1e6 * 0.5
    assert abs(r.cost_usd - expected) < 1e-12
    w = writes[0]
    expected = (w.input_tokens + 2.0 * w.cache_creation_input_tokens + 5 * w.output_tokens) / 1e6 * 0.5
    assert abs(w.cost_usd - expected) < 1e-12


def test_a_ticket_changed_after_enqueue_is_reported_not_refined(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    assert cli(sample_repo, "enqueue", "--phase", "refinement").code == 0
    path = sample_repo / PENDING / "TASK-014-document-invoices-api.md"
    edited = path.read_bytes() + b"\nA maintainer edited this meanwhile.\n"
    path.write_bytes(edited)
    assert cli(sample_repo, "submit").code == 0
    for _ in range(100):
        assert cli(sample_repo, "reconcile").code == 0
        jobs, _ = read_queue(Layout(sample_repo))
        if all(j.terminal for j in jobs):
            break
    assert path.read_bytes() == edited
    record = load_state_for(sample_repo)["TASK-014"]
    assert record.outcome == "changed-since-enqueue"
    report = (sample_repo / ".backlog-ops/reports/refinement.md").read_text()
    assert "| TASK-014 | changed-since-enqueue |" in report
    # Its new content is enqueued again; tickets we left as we wrote them are not.
    res = cli(sample_repo, "enqueue", "--phase", "refinement")
    jobs, _ = read_queue(Layout(sample_repo))
    assert res.code == 0 and jobs[-1].request_count == 1


def test_apply_rerun_after_a_crash_is_a_no_op(sample_repo: Path) -> None:
    config = load_config(sample_repo)
    scan = scan_backlog(sample_repo)
    ctx = PhaseContext(Layout(sample_repo), config, scan, triage(scan.pending, config.ticket_validation))
    ticket = scan.by_id()["IDEA-007"]
    result = SettledResult(
        custom_id="ref-IDEA-007",
        status="succeeded",
        meta=ItemMeta.model_validate(
            {
                "ticket_id": ticket.id,
                "ticket_path": ticket.path,
                "content_hash": ticket.content_hash,
                "fields": ["description"],
            }
        ),
        output={"description": "Show a badge next to customers with no late invoice in the last 12 months."},
    )
    phase = RefinementPhase()
    first = phase.apply(ctx, "job-20260301-0007", iter([result]))
    path = sample_repo / ticket.path
    once = path.read_bytes()
    second = phase.apply(ctx, "job-20260301-0007", iter([result]))
    assert (first.applied, second.applied, second.skipped) == (1, 0, 1)
    assert path.read_bytes() == once
    assert once.count(b"job-20260301-0007") == 1
    assert b"## Description\nShow a badge next to customers" in once
    record = load_state_for(sample_repo)["IDEA-007"]
    assert record.outcome == "already-applied" and record.hash_after == hashlib.sha256(once).hexdigest()
    # Left as we wrote it: not planned again.
    fresh = scan_backlog(sample_repo)
    ctx2 = PhaseContext(Layout(sample_repo), config, fresh, triage(fresh.pending, config.ticket_validation))
    planned = {it.meta.ticket_id for job in phase.plan(ctx2) for it in job.items}
    assert "IDEA-007" not in planned and "FEAT-026" in planned


def test_hostile_model_text_cannot_reach_front_matter_or_add_headings(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    hostile = {
        "acceptance_criteria": ["## History", "--- \npriority: critical", "A sign-up with a code gets 20% off."],
        "open_questions": ["</details><script>alert(1)</script>", "# Heading?"],
    }
    match = f"Ticket file: {PENDING}/FEAT-035-referral-discount-codes.md\nSections to rewrite"
    sandbox.set_scenario({"responses": [{"match": match, "text": json.dumps(hostile)}]})
    path = sample_repo / PENDING / "FEAT-035-referral-discount-codes.md"
    old = parse_ticket(path.read_bytes(), "x")
    assert cli(sample_repo, "cycle", "--phase", "refinement", *WAIT).code == 0
    new = parse_ticket(path.read_bytes(), "x")
    assert new.front == {**old.front, "updated": new.front["updated"]}
    headings = [s.heading for s in new.sections]
    assert headings == [s.heading for s in old.sections[:-1]] + ["Open Questions", "History"]
    criteria = new.acceptance_criteria()
    assert criteria[:2] == ["- [ ] AC-1: \\## History", "- [ ] AC-2: --- priority: critical"]
    assert (new.section("Open Questions") or "").splitlines() == [
        "- \\</details>\\<script>alert(1)\\</script>",
        "- \\# Heading?",
    ]
