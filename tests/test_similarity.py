"""Zero-token duplicate candidates: recall on a labelled set, a bounded pair count, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batch_ops.backlog import scan_backlog
from batch_ops.similarity import Params, recall, stem, ticket_candidates, tokens
from batch_ops.testing.ticketgen import generate_backlog

PLANTED = {("FEAT-012", "FEAT-019"), ("BUG-031", "BUG-037"), ("FEAT-024", "IDEA-006")}


def test_recall_on_a_labelled_set_at_five_candidates_per_ticket(tmp_path: Path) -> None:
    made = generate_backlog(tmp_path, 800, duplicates=50, seed=21)
    scan = scan_backlog(tmp_path)
    found = ticket_candidates(scan.pending, Params(per_ticket=5))
    assert recall(found, made.pairs) >= 0.95
    assert len(found) <= 5 * len(scan.pending)  # never all pairs: at most k per ticket
    assert len({(c.a, c.b) for c in found}) == len(found) and all(c.a < c.b for c in found)


def test_the_sample_backlogs_planted_pairs_are_among_the_phases_candidates(sample_repo: Path) -> None:
    scan = scan_backlog(sample_repo)
    found = ticket_candidates(scan.pending, Params(per_ticket=3, min_score=0.05))
    assert {(c.a, c.b) for c in found} >= PLANTED
    assert len(found) < len(scan.pending) * (len(scan.pending) - 1) / 2 / 4


def test_text_normalisation() -> None:
    assert tokens("The Invoices are exported, and the invoice list filters") == [
        "invoice", "export", "invoice", "list", "filter"
    ]  # fmt: skip
    assert [stem(w) for w in ("boxes", "queries", "running", "class", "status")] == [
        "box", "query", "runn", "class", "status"
    ]  # fmt: skip


def test_duplicates_candidates_command(cli: Any, sample_repo: Path) -> None:
    res = cli(sample_repo, "duplicates", "--candidates", "--json", "--per-ticket", "3")
    assert res.code == 0
    pairs = {(p["a"], p["b"]) for p in json.loads(res.out)}
    assert pairs >= PLANTED
    human = cli(sample_repo, "duplicates", "--candidates")
    assert "zero tokens" in human.out and "FEAT-012     FEAT-019" in human.out
    assert cli(sample_repo, "duplicates").code == 1  # no judged report yet
