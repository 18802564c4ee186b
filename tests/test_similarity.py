"""Zero-token duplicate candidates: recall on a labelled set, a bounded pair count, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batch_ops.backlog import scan_backlog
from batch_ops.similarity import Params, candidate_pairs_tokens, recall, stem, ticket_candidates, tokens
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
    found = ticket_candidates(scan.pending)  # the defaults are the phase's
    assert (Params().per_ticket, Params().min_score) == (3, 0.05)
    assert {(c.a, c.b) for c in found} >= PLANTED
    assert len(found) < len(scan.pending) * (len(scan.pending) - 1) / 2 / 4


def test_text_normalisation() -> None:
    assert tokens("The Invoices are exported, and the invoice list filters") == [
        "invoic", "export", "invoic", "list", "filter"
    ]  # fmt: skip
    assert [stem(w) for w in ("boxes", "queries", "running", "class", "status")] == [
        "box", "query", "run", "class", "status"
    ]  # fmt: skip
    # A word and its inflections meet: the final e and a doubled consonant go.
    for forms in (("rearrange", "rearranging", "rearranged"), ("drag", "dragging", "dragged"), ("save", "saved")):
        assert len({stem(w) for w in forms}) == 1, forms


def test_prose_and_paths_are_scored_apart() -> None:
    """A pair's score is the mean of its prose cosine and its paths cosine (``path_weight`` 0.5),
    a missing field counting 0: the same prose scores 0.5 whether or not the other ticket has
    paths, so a twin without a file table is not pushed down by its twin's paths."""
    prose = "Reorder payment plans by dragging rows; the payer name and settlement date stay."
    paths = "src/payments/paymentPlan/reorder.ts"
    docs = [
        ("A-1", tokens(prose), tokens(paths)),
        ("A-2", tokens(prose), []),
        ("B-1", tokens("calendar of invoices"), tokens(paths)),
        ("C-1", tokens("audit log for usage meters"), tokens("src subscriptions usageMeter")),
    ]
    found = {(c.a, c.b): c for c in candidate_pairs_tokens(docs, Params(per_ticket=3, min_score=0.0))}
    assert found[("A-1", "A-2")].score == 0.5  # the same prose, one side without paths
    assert found[("A-1", "B-1")].score == 0.5  # the same paths, other prose
    assert "payer" in found[("A-1", "A-2")].shared
    # The same word in both fields is named once among the shared terms.
    assert len(set(found[("A-1", "B-1")].shared)) == len(found[("A-1", "B-1")].shared)


def test_a_term_in_most_tickets_is_scored_but_not_indexed() -> None:
    """Boilerplate in more than ``index_share`` of the tickets would make every ticket meet every
    other: pairs are still found through their own words, and scored with the common word too."""
    words = [f"pass ci topic{i // 2}word topic{i // 2}other" for i in range(20)]
    docs = [(f"T-{i:02d}", tokens(text), tokens("src tests ts")) for i, text in enumerate(words)]
    found = candidate_pairs_tokens(docs, Params(per_ticket=1, min_score=0.0))
    assert {(c.a, c.b) for c in found} == {(f"T-{2 * k:02d}", f"T-{2 * k + 1:02d}") for k in range(10)}
    assert all(c.score > 0.99 for c in found)  # the pairs are identical, boilerplate included


def test_duplicates_candidates_command(cli: Any, sample_repo: Path) -> None:
    res = cli(sample_repo, "duplicates", "--candidates", "--json")
    assert res.code == 0
    pairs = {(p["a"], p["b"]) for p in json.loads(res.out)}
    assert pairs >= PLANTED
    # Without flags the command lists what the duplicate-detection phase asks the model about.
    assert pairs == {(c.a, c.b) for c in ticket_candidates(scan_backlog(sample_repo).pending)}
    wider = cli(sample_repo, "duplicates", "--candidates", "--json", "--per-ticket", "5")
    assert len(json.loads(wider.out)) > len(pairs)
    human = cli(sample_repo, "duplicates", "--candidates")
    assert "zero tokens" in human.out and "FEAT-012     FEAT-019" in human.out
    assert cli(sample_repo, "duplicates").code == 1  # no judged report yet
