"""`batch-ops commit-state` with real git: a bare remote, shallow clones, concurrent pushes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from batch_ops.cli import main
from batch_ops.github.commit_state import MergeConflict, merge_ledger_texts, merge_queue_texts
from batch_ops.github.git import BOT_EMAIL, BOT_NAME, Git
from batch_ops.paths import Layout
from batch_ops.queue import read_queue
from tests.conftest import SAMPLE
from tests.ghactions.gitutil import clone, git, make_remote, push_change, remote_file, remote_log
from tests.ghactions.state import GH_TOKEN, append_ledger, job, ledger_line, write_jobs

QUEUE = ".backlog-ops/batch-queue.jsonl"
LEDGER = ".backlog-ops/usage-ledger.jsonl"
TICKET = "backlog/data/pending/FEAT-012-csv-export.md"


def queue_text(*records: Any) -> str:
    return "".join(r.model_dump_json() + "\n" for r in records)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A remote whose main has the sample backlog and a queue with job-1 (submitted) and job-2 (queued)."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GITHUB_TOKEN", "GITHUB_REF", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    src = tmp_path / "src"
    import shutil

    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("README.md"))
    write_jobs(src, [job("job-1", "submitted"), job("job-2", "queued")])
    (src / ".backlog-ops/.lock").unlink()
    append_ledger(src, ledger_line("job-0", "base-line", 0.001))
    bare = make_remote(tmp_path, src)
    work = clone(bare, tmp_path / "work")
    return {"bare": bare, "work": work, "other": tmp_path / "other", "tmp": tmp_path}


def commit_state(work: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["commit-state", "--repo", str(work), "--backoff", "0", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_nothing_to_commit_makes_no_commit(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = remote_log(world["bare"])
    # The lock file and temp files are never state.
    (world["work"] / ".backlog-ops/.lock").write_text("")
    (world["work"] / ".backlog-ops/.batch-queue.jsonl.99.tmp").write_text("half")
    code, out, _ = commit_state(world["work"], capsys)
    assert code == 0 and "nothing to commit" in out
    assert remote_log(world["bare"]) == before
    assert git(world["work"], "status", "--porcelain", "--untracked-files=no") == ""


def test_commits_as_the_bot_with_a_message_that_says_what_happened(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = world["work"]
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out.txt"))
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/app")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    write_jobs(work, [
        job("job-1", "completed", settled={"succeeded": 2}),
        job("job-2", "submitted", batches=[{"id": "msgbatch_9", "request_count": 3, "intent_at": "x"}]),
        job("job-3", "queued"),
    ])  # fmt: skip
    append_ledger(work, ledger_line("job-1", "a", 0.25), ledger_line("job-1", "b", 0.5))
    ticket = work / TICKET
    ticket.write_text(ticket.read_text() + "\nRefined.\n")
    code, out, err = commit_state(work, capsys)
    assert code == 0, err
    assert "pushed to origin/main" in out
    (subject,) = remote_log(world["bare"])[:1]
    assert subject == (
        f"{BOT_NAME} <{BOT_EMAIL}> | batch-ops: enqueued 1 job, submitted 1 batch, completed 1 job, "
        "settled 2 requests, refined 1 ticket"
    )
    body = git(world["bare"], "log", "-1", "--format=%b", "main")
    assert "Completed: job-1" in body and "Ledger: 2 lines added, cost $0.7500" in body
    assert "Run: https://github.com/octo/app/actions/runs/77" in body
    assert git(world["bare"], "log", "-1", "--format=%cn <%ce>", "main").strip() == f"{BOT_NAME} <{BOT_EMAIL}>"
    tracked = git(world["bare"], "ls-tree", "-r", "--name-only", "main")
    assert ".backlog-ops/.lock" not in tracked
    outputs = (tmp_path / "out.txt").read_text()
    assert "committed=true" in outputs and "pushed=true" in outputs


def test_concurrent_unrelated_push_is_rebased_over(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    work = world["work"]
    write_jobs(work, [job("job-1", "completed"), job("job-2", "queued")])
    push_change(world["bare"], world["other"], {"README.md": "someone else\n"}, "docs: someone else")
    code, out, err = commit_state(work, capsys)
    assert code == 0, err
    assert "after 2 attempt(s), 1 rebase(s)" in out
    log = remote_log(world["bare"])
    assert log[0].endswith("batch-ops: completed 1 job") and log[1].endswith("docs: someone else")
    assert remote_file(world["bare"], "README.md") == "someone else\n"


def test_concurrent_queue_and_ledger_changes_are_reapplied_not_text_merged(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, bare = world["work"], world["bare"]
    base_ledger = (work / LEDGER).read_text()
    # Someone else: job-2 retried by an operator (changed) and a new job-9; one ledger line.
    theirs = queue_text(
        job("job-1", "submitted"),
        job("job-2", "submitted", updated_at="2026-02-18T01:00:00Z"),
        job("job-9", "queued", created_at="2026-02-18T02:00:00Z"),
    )
    push_change(bare, world["other"], {QUEUE: theirs, LEDGER: base_ledger + ledger_line("job-9", "t", 0.1) + "\n"},
                "operator: local run")  # fmt: skip
    # This run: job-1 completed, job-3 enqueued; two ledger lines.
    write_jobs(work, [job("job-1", "completed", updated_at="2026-02-18T03:00:00Z"), job("job-2", "queued"),
                      job("job-3", "queued", created_at="2026-02-18T03:00:00Z")])  # fmt: skip
    append_ledger(work, ledger_line("job-1", "a", 0.2), ledger_line("job-1", "b", 0.3))
    code, _out, err = commit_state(work, capsys)
    assert code == 0, err
    queue = remote_file(bare, QUEUE)
    assert "<<<<<<<" not in queue and ">>>>>>>" not in queue
    jobs = {j["id"]: j for j in map(json.loads, queue.splitlines())}
    assert list(jobs) == ["job-1", "job-2", "job-9", "job-3"]
    assert jobs["job-1"]["status"] == "completed"  # this run's change
    assert jobs["job-2"]["status"] == "submitted"  # the remote's change, which this run did not touch
    ledger = remote_file(bare, LEDGER).splitlines()
    assert [json.loads(line)["custom_id"] for line in ledger] == ["base-line", "t", "a", "b"]
    # The working tree is the merged state, ready for the next step.
    assert [j.id for j in read_queue(Layout(work))[0]] == ["job-1", "job-2", "job-9", "job-3"]


def test_a_job_changed_on_both_sides_keeps_the_later_record(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, bare = world["work"], world["bare"]
    theirs = queue_text(job("job-1", "running", updated_at="2026-02-18T05:00:00Z"), job("job-2", "queued"))
    push_change(bare, world["other"], {QUEUE: theirs}, "someone polled")
    write_jobs(work, [job("job-1", "completed", updated_at="2026-02-18T06:00:00Z"), job("job-2", "queued")])
    assert commit_state(work, capsys)[0] == 0
    jobs = [json.loads(line) for line in remote_file(bare, QUEUE).splitlines()]
    assert [(j["id"], j["status"]) for j in jobs] == [("job-1", "completed"), ("job-2", "queued")]


def test_a_ticket_edited_by_a_person_meanwhile_keeps_the_persons_version(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, bare = world["work"], world["bare"]
    original = (work / TICKET).read_text()
    push_change(bare, world["other"], {TICKET: original.replace("CSV", "Spreadsheet", 1)}, "person edits")
    (work / TICKET).write_text(original.replace("CSV", "Comma-separated", 1))
    write_jobs(work, [job("job-1", "completed"), job("job-2", "queued")])
    code, _, err = commit_state(work, capsys)
    assert code == 0
    assert "kept the remote's version" in err and TICKET in err
    assert "Spreadsheet" in remote_file(bare, TICKET)
    assert json.loads(remote_file(bare, QUEUE).splitlines()[0])["status"] == "completed"


def test_push_that_keeps_failing_is_bounded(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    work = world["work"]
    git(work, "remote", "set-url", "origin", str(world["tmp"] / "gone.git"))
    write_jobs(work, [job("job-1", "completed"), job("job-2", "queued")])
    code, _, err = commit_state(work, capsys, "--attempts", "3")
    assert code == 1 and "failed after 3 attempt(s)" in err


def test_same_new_job_id_on_both_sides_is_a_conflict_not_a_guess() -> None:
    base = queue_text(job("job-1"))
    with pytest.raises(MergeConflict, match="job-7 was created on both sides"):
        merge_queue_texts(base, base + queue_text(job("job-7", phase="a")), base + queue_text(job("job-7", phase="b")))


def test_merge_drivers_keep_unparseable_lines_and_do_not_duplicate() -> None:
    base = queue_text(job("job-1")) + "not json\n"
    merged = merge_queue_texts(base, base + "other junk\n", base)
    assert merged.splitlines()[1:] == ["not json", "other junk"]
    ledger = merge_ledger_texts("a\nb\n", "a\nb\nc\n", "a\nb\nc\nd\n")
    assert ledger == "a\nb\nc\nd\n"


def test_token_reaches_git_through_the_environment_only(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    helper = Git(tmp_path, token=GH_TOKEN, server_url="https://github.example")
    env = helper.env(helper._auth_config())
    header_key = next(k for k, v in env.items() if v == "http.https://github.example/.extraheader")
    value = env[header_key.replace("KEY", "VALUE")]
    assert value.startswith("AUTHORIZATION: basic ") and GH_TOKEN not in value  # base64, in env only
    assert helper.redact(f"fatal: {value} {GH_TOKEN}") == "fatal: AUTHORIZATION: basic *** ***"
    # A checkout that persisted its own credential is left alone: two headers would be refused.
    git(tmp_path, "config", "http.https://github.example/.extraheader", "AUTHORIZATION: basic x")
    assert Git(tmp_path, token=GH_TOKEN, server_url="https://github.example")._auth_config() == []
    result = subprocess.run(["git", "config", "--list", "--local"], cwd=tmp_path, capture_output=True, text=True)
    assert GH_TOKEN not in result.stdout
