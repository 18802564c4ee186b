from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_ops.backlog import parse_ticket, scan_backlog
from batch_ops.checks import Finding
from batch_ops.cli import main
from batch_ops.config import TicketValidation
from batch_ops.testing.ticketgen import generate_backlog
from batch_ops.triage import RISK_WORDS, TriageResult, buckets, triage, triage_backlog, triage_ticket
from tests.conftest import SAMPLE
from tests.test_backlog import GOOD

RULES = TicketValidation()


def _ticket(text: str, name: str = "backlog/data/pending/FEAT-100.md"):  # type: ignore[no-untyped-def]
    return parse_ticket(text.encode(), name)


def test_complete_simple_ticket_needs_no_llm() -> None:
    assert triage_ticket(_ticket(GOOD), RULES).bucket == "no-llm"


def test_incomplete_ticket_needs_a_cheap_llm() -> None:
    text = GOOD.replace("- [ ] AC-2: the thing works\n", "")
    res = triage_ticket(_ticket(text), RULES)
    assert res.bucket == "cheap-llm"
    assert any("acceptance criteria" in r for r in res.reasons)


def test_critical_priority_requires_frontier() -> None:
    assert (
        triage_ticket(_ticket(GOOD.replace("priority: low", "priority: critical")), RULES).bucket == "requires-frontier"
    )


def test_two_moderate_signals_require_frontier() -> None:
    text = GOOD.replace("priority: low", "priority: high").replace("Add the thing.", "Rotate the payment credentials.")
    res = triage_ticket(_ticket(text), RULES)
    assert res.bucket == "requires-frontier"
    assert any("payment" in r for r in res.reasons)


def test_boilerplate_does_not_move_a_ticket() -> None:
    # "Author" in the History header, src/auth/ in scope_boundary and in the Affected Files table.
    text = GOOD.replace("priority: low\n", 'priority: low\nscope_boundary: "do not touch src/auth/"\n')
    text = text.replace("| `src/thing.ts` | new |", "| `src/thing.ts` | new |\n| `src/auth/guard.ts` | read only |")
    assert "Author" in text
    res = triage_ticket(_ticket(text), RULES)
    assert res.bucket == "no-llm", res.reasons


def test_risk_words_are_whole_words_only() -> None:
    # "authored" and "tokenizer" are not risk words; "src/auth/x" in prose is a path.
    text = GOOD.replace("Add the thing.", "Authored by the tokenizer team; see src/auth/x for style.")
    assert triage_ticket(_ticket(text), RULES).bucket == "no-llm"
    text = GOOD.replace("Add the thing.", "Fix the auth redirect.")
    assert triage_ticket(_ticket(text), RULES).bucket == "cheap-llm"


def test_sample_buckets_match_the_intended_roles() -> None:
    scan = scan_backlog(SAMPLE)
    out = buckets(triage(scan.pending, RULES))
    assert set(out["requires-frontier"]) == {"SEC-002", "FEAT-030", "TASK-017", "BUG-043"}
    assert {"FEAT-026", "BUG-040", "TASK-014", "FEAT-028", "IDEA-007", "FEAT-035", "IDEA-006"} <= set(out["cheap-llm"])
    assert "FEAT-015" in out["no-llm"]  # the boilerplate ticket
    for ids in out.values():
        assert ids == sorted(ids)


def test_triage_command_prints_buckets_and_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", "--repo", str(SAMPLE)]) == 0
    first = capsys.readouterr().out
    data = json.loads(first)
    assert set(data) == {"no-llm", "cheap-llm", "requires-frontier"}
    assert main(["triage", "--repo", str(SAMPLE)]) == 0
    assert capsys.readouterr().out == first  # deterministic
    assert main(["triage", "--repo", str(SAMPLE), "--explain"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["reasons"]["SEC-002"]


_PIECES = ["auth", "OAuth", "Security", "race", "data-loss", "src/auth/", "x", "_", "-", ".", "/", " ", "\n", "é",
           "migration", "pii", "9", "(", ")", ",", "RACE", "\t", "\x0b", "@", "`", "[", "~", "\x7f"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12))
def test_risk_word_tokens_agree_with_the_regex(parts: list[str]) -> None:
    from batch_ops.triage import _RISK_RE, _RISK_SET, _TOKEN_RE, risk_tokens

    text = "".join(parts)
    by_regex = {m.group(1).lower() for m in _RISK_RE.finditer(text)}
    by_tokens = {tok for tok in _TOKEN_RE.findall(text.lower()) if tok in _RISK_SET}
    assert by_regex == by_tokens
    # The ASCII fast path (bytes.translate) and the regex path agree with the regex too.
    assert risk_tokens(text) == sorted(by_regex)


def test_built_results_and_findings_are_what_validation_makes(tmp_path: Path) -> None:
    """Triage builds its results and findings without validating them (``backlog.built_model``):
    the same state as the validated models, on a messy generated backlog."""
    for model in (TriageResult, Finding):
        assert not any(f.alias or f.validation_alias or not f.is_required() for f in model.model_fields.values())
        assert not model.__private_attributes__ and model.model_config.get("extra") in (None, "ignore")
    generate_backlog(tmp_path, 300, seed=5, messy=True, messy_ratio=0.3)
    scan = scan_backlog(tmp_path)
    results = triage(scan.pending, TicketValidation(requireDependencyCheck=True))
    assert any(r.findings for r in results.values())
    for res in results.values():
        validated = TriageResult(ticket_id=res.ticket_id, bucket=res.bucket, reasons=res.reasons, findings=res.findings)
        assert res.__dict__ == validated.__dict__ and res == validated
        assert res.__pydantic_fields_set__ == validated.__pydantic_fields_set__
        assert (res.__pydantic_extra__, res.__pydantic_private__) == (None, None)
        assert TriageResult.model_validate(res.model_dump()) == res
        for finding in res.findings:
            again = Finding(code=finding.code, severity=finding.severity, message=finding.message)
            assert finding.__dict__ == again.__dict__ and finding == again and hash(finding) == hash(again)
            assert finding.__pydantic_fields_set__ == again.__pydantic_fields_set__
            with pytest.raises(ValueError):
                finding.code = "other"  # type: ignore[misc]  # frozen, as the model says


_WORD_PIECES = [*_PIECES, *RISK_WORDS, *(w.upper() for w in RISK_WORDS), "auths", "secur", "oauth2", "sso.", "-race"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_WORD_PIECES), max_size=16))
def test_every_risk_word_found_as_the_regex_finds_it(parts: list[str]) -> None:
    from batch_ops.triage import _RISK_RE, risk_tokens

    text = "".join(parts)
    assert risk_tokens(text) == sorted({m.group(1).lower() for m in _RISK_RE.finditer(text)})


def test_the_streamed_triage_is_the_scan_then_triage(tmp_path: Path) -> None:
    """``triage_backlog`` (what ``batch-ops triage`` runs) gives what scanning, keeping every ticket
    and triaging the pending ones gives: the same results in the same order, the same problems."""
    generate_backlog(tmp_path, 300, seed=7, messy=True, messy_ratio=0.3)
    pending = tmp_path / "backlog" / "data" / "pending"
    completed = tmp_path / "backlog" / "data" / "completed"
    completed.mkdir(parents=True, exist_ok=True)
    first = sorted(pending.glob("*.md"))[0]
    (completed / first.name).write_bytes(first.read_bytes())  # a completed ticket, and a duplicate id
    (pending / "zz-broken.md").write_bytes(b"\x00\x01 not a ticket")
    rules = TicketValidation(requireDependencyCheck=True)
    scan = scan_backlog(tmp_path)
    expected = triage(scan.pending, rules)
    results, problems, tickets = triage_backlog(tmp_path, "backlog/data", rules)
    assert list(results) == list(expected)
    assert all(results[k].model_dump() == expected[k].model_dump() for k in expected)
    assert [str(p) for p in problems] == [str(p) for p in scan.problems]
    assert any("duplicate id" in str(p) for p in problems) and any("binary" in str(p) for p in problems)
    assert tickets == len(scan.tickets) and len(results) == len(scan.pending)


_TAG = st.one_of(
    st.sampled_from(["security", "Security", "MIGRATION", "compliance ", "", " ", "ui", "architecture"]),
    st.none(),
    st.integers(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_TAG, max_size=6), _TAG))
def test_strong_tags_are_the_listed_tags_that_are_strong(value: object) -> None:
    """``_strong_tags`` (no comprehension for a list) gives what lower-casing ``list_field("tags")`` does."""
    from batch_ops.triage import _STRONG_TAGS, _strong_tags

    plain = _ticket(GOOD)
    ticket = plain.model_copy(update={"front": {**plain.front, "tags": value}})
    assert _strong_tags(ticket) == {t.lower() for t in ticket.list_field("tags")} & _STRONG_TAGS
