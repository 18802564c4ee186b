"""The synthetic backlog generator: deterministic, in the ticket format, with honest planted pairs."""

from __future__ import annotations

import collections
import json
import math
import re
import time
from pathlib import Path

import pytest
import yaml

from batch_ops.testing.ticketgen import DEFECTS, GeneratedBacklog, generate_backlog, topic_count


def front_and_body(raw: bytes) -> tuple[str, str]:
    text = raw.decode("utf-8-sig").replace("\r\n", "\n")
    front, body = text[4:].split("\n---\n", 1)
    return front, body


def title_and_description(path: Path) -> str:
    front, body = front_and_body(path.read_bytes())
    title = re.search(r'^title: "(.*)"$', front, re.M)
    assert title
    desc = re.search(r"## Description\n(.*?)\n## ", body, re.S)
    assert desc
    return f"{title.group(1)} {desc.group(1)}"


def test_writes_n_tickets_with_ids_in_file_names(tmp_path: Path) -> None:
    result = generate_backlog(tmp_path, 300, duplicates=5, seed=1)
    pending = tmp_path / "backlog" / "data" / "pending"
    assert sorted(pending.iterdir()) == sorted(result.paths)
    assert len(result.paths) == len(result.ids) == len(set(result.ids)) == 300
    for ticket_id, path in zip(result.ids, result.paths, strict=True):
        assert re.fullmatch(r"(FEAT|BUG|TASK|IDEA|SEC)-\d{3,}", ticket_id)
        assert path.name.startswith(ticket_id + "-") and path.suffix == ".md"
    assert {i.split("-")[0] for i in result.ids} == {"FEAT", "BUG", "TASK", "IDEA", "SEC"}
    assert result.path_of(result.ids[7]) == result.paths[7]


def test_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate_backlog(tmp_path / "a", 200, duplicates=4, seed=42, messy=True)
    b = generate_backlog(tmp_path / "b", 200, duplicates=4, seed=42, messy=True)
    c = generate_backlog(tmp_path / "c", 200, duplicates=4, seed=43, messy=True)
    assert a.ids == b.ids and a.pairs == b.pairs and a.incomplete == b.incomplete and a.messy == b.messy
    assert [p.name for p in a.paths] == [p.name for p in b.paths]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(a.paths, b.paths, strict=True))
    assert [p.read_bytes() for p in a.paths] != [p.read_bytes() for p in c.paths]


def test_writes_the_sample_config_only_when_missing(tmp_path: Path) -> None:
    result = generate_backlog(tmp_path, 3)
    config = json.loads(result.config_path.read_text(encoding="utf-8"))
    assert config["llmOps"]["batchPolicy"]["enabled"] is True
    assert config["ticketValidation"]["minAcceptanceCriteria"] == 2
    result.config_path.write_text('{"mine": true}\n', encoding="utf-8")
    generate_backlog(tmp_path, 3)
    assert json.loads(result.config_path.read_text(encoding="utf-8")) == {"mine": True}


def test_front_matter_parses_and_carries_the_format_keys(tmp_path: Path) -> None:
    result = generate_backlog(tmp_path, 400, seed=3)
    for ticket_id, path in zip(result.ids, result.paths, strict=True):
        front, body = front_and_body(path.read_bytes())
        meta = yaml.safe_load(front)
        assert meta["id"] == ticket_id
        assert meta["status"] == "pending"
        assert meta["priority"] in ("low", "medium", "high", "critical")
        for key in ("title", "created", "updated", "assignee", "tags", "blockers", "depends_on",
                    "shared_files", "related_docs", "estimated_tokens"):
            assert key in meta, key
        if ticket_id.startswith("BUG"):
            assert {"severity", "environment"} <= set(meta)
        if ticket_id.startswith("IDEA"):
            assert {"type", "ice_score"} <= set(meta)
        assert set(meta["depends_on"]) <= set(result.ids)
        assert body.startswith(f"\n# {ticket_id}: {meta['title']}\n")
        assert "## History\n| Date | Author | Change |\n" in body


def test_complete_and_incomplete_tickets(tmp_path: Path) -> None:
    result = generate_backlog(tmp_path, 1000, duplicates=10, seed=5, incomplete_ratio=0.3)
    assert 0.22 < len(result.incomplete) / 1000 < 0.38
    assert set().union(*result.incomplete.values()) == set(DEFECTS)
    for ticket_id, path in zip(result.ids, result.paths, strict=True):
        _, body = front_and_body(path.read_bytes())
        defects = result.incomplete.get(ticket_id, ())
        acs = re.findall(r"(?m)^- \[ \] AC-\d+: \S", body)
        assert ("## Test Strategy\n" not in body) == ("no-test-strategy" in defects), ticket_id
        assert ("## Affected Files\n| File | Change |\n" not in body) == ("no-affected-files" in defects)
        assert (len(acs) == 1) == ("one-acceptance-criterion" in defects), ticket_id
        assert ("## Description\n\n## " in body) == ("empty-description" in defects), ticket_id
        if "no-test-strategy" not in defects:
            has_commands = "### Verification Commands\n```bash\n" in body
            assert has_commands == ("no-verification-commands" not in defects), ticket_id
        if not defects:
            assert len(acs) >= 2
            for section in ("Context", "Description", "Affected Files", "Acceptance Criteria",
                            "Test Strategy", "Dependencies", "Implementation Notes", "History"):
                assert f"## {section}\n" in body, (ticket_id, section)
    assert not generate_backlog(tmp_path / "full", 200, incomplete_ratio=0.0).incomplete


def test_planted_pairs_are_rewordings_not_copies(tmp_path: Path) -> None:
    result = generate_backlog(tmp_path, 400, duplicates=12, seed=9)
    assert len(result.pairs) == 12 and result.pairs == sorted(result.pairs)
    members = [i for pair in result.pairs for i in pair]
    assert len(set(members)) == 24
    for a, b in result.pairs:
        assert a < b
        text_a, text_b = (title_and_description(result.path_of(x)) for x in (a, b))
        title_a, title_b = (yaml.safe_load(front_and_body(result.path_of(x).read_bytes())[0])["title"]
                            for x in (a, b))
        assert title_a != title_b
        wa, wb = (set(re.findall(r"[a-z]+", t.lower())) for t in (text_a, text_b))
        # Reworded: far from a copy, yet about the same thing (shared domain nouns and terms).
        assert len(wa & wb) / len(wa | wb) < 0.6, (a, b)
        assert len(wa & wb) >= 5, (a, b)
        assert "empty-description" not in result.incomplete.get(a, ()) + result.incomplete.get(b, ())


def tfidf(texts: list[str]) -> list[dict[str, float]]:
    docs = [collections.Counter(re.findall(r"[a-z0-9]+", t.lower())) for t in texts]
    df = collections.Counter(w for d in docs for w in d)
    vecs = []
    for d in docs:
        v = {w: (1 + math.log(c)) * math.log(len(docs) / df[w]) for w, c in d.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        vecs.append({w: x / norm for w, x in v.items()})
    return vecs


def test_bag_of_words_finds_twins_but_few_spurious_pairs(tmp_path: Path) -> None:
    result: GeneratedBacklog = generate_backlog(tmp_path, 600, duplicates=10, seed=1)
    vecs = tfidf([title_and_description(p) for p in result.paths])
    index: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)
    for i, v in enumerate(vecs):
        for w, x in v.items():
            index[w].append((i, x))
    position = {t: i for i, t in enumerate(result.ids)}
    partner = {}
    for a, b in result.pairs:
        partner[position[a]], partner[position[b]] = position[b], position[a]
    nearest_is_partner = spurious = 0
    for i, v in enumerate(vecs):
        sims: dict[int, float] = collections.defaultdict(float)
        for w, x in v.items():
            for j, y in index[w]:
                if j != i:
                    sims[j] += x * y
        if i in partner:
            nearest_is_partner += max(sims, key=lambda j: sims[j]) == partner[i]
        spurious += sum(1 for j, s in sims.items() if j > i and s >= 0.5 and partner.get(i) != j)
    assert nearest_is_partner >= 12  # of 20 members: most twins are each other's nearest neighbour
    assert spurious / (600 * 599 / 2) < 0.001  # unrelated tickets rarely look alike


def test_messy_quirks_are_in_the_bytes(tmp_path: Path) -> None:
    result = generate_backlog(tmp_path, 1500, duplicates=20, seed=11, messy=True)
    assert 0.02 < len(result.messy) / 1500 < 0.07
    assert set(result.messy.values()) == {"crlf", "bom", "broken-yaml", "missing-id"}
    in_pairs = {i for pair in result.pairs for i in pair}
    for ticket_id, path in zip(result.ids, result.paths, strict=True):
        raw = path.read_bytes()
        quirk = result.messy.get(ticket_id, "")
        assert (b"\r\n" in raw) == (quirk == "crlf"), ticket_id
        if quirk == "crlf":
            assert raw.count(b"\n") == raw.count(b"\r\n")
        assert raw.startswith(b"\xef\xbb\xbf") == (quirk == "bom"), ticket_id
        front, _ = front_and_body(raw)
        if quirk == "broken-yaml":
            assert ticket_id not in in_pairs
            with pytest.raises(yaml.YAMLError):
                yaml.safe_load(front)
            continue
        meta = yaml.safe_load(front)
        assert ("id" in meta) == (quirk != "missing-id"), ticket_id
    assert not generate_backlog(tmp_path / "clean", 300, seed=11).messy


def test_rejects_impossible_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_backlog(tmp_path, 3, duplicates=2)
    with pytest.raises(ValueError):
        generate_backlog(tmp_path, 3, incomplete_ratio=1.5)


def test_topic_space_is_large() -> None:
    counts = topic_count()
    assert set(counts) == {"FEAT", "BUG", "TASK", "IDEA", "SEC"}
    assert sum(counts.values()) > 30_000


def test_ten_thousand_tickets(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = generate_backlog(tmp_path, 10_000, duplicates=100, seed=2, messy=True)
    elapsed = time.perf_counter() - start
    print(f"generated 10,000 tickets in {elapsed:.2f}s")
    assert len(list((tmp_path / "backlog" / "data" / "pending").iterdir())) == 10_000
    assert len(result.pairs) == 100
