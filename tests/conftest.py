"""Shared fixtures: a copy of the sample repository, a running sandbox, a CLI runner.

Everything is real: the sandbox is an HTTP server on loopback, the CLI runs ``main()`` with the
environment a workflow would give it, and the SDK talks HTTP to the sandbox.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from batch_ops.cli import main
from batch_ops.sandbox import SandboxServer

SAMPLE = Path(str(resources.files("batch_ops") / "data" / "sample"))
TEST_KEY = "sk-ant-test-key-for-sandbox"


@pytest.fixture(autouse=True)
def _collector_unfrozen() -> Iterator[None]:
    """A scan leaves what it built frozen out of the collector (``backlog.gc_paused``): fine for a
    command that ends, but a test process runs hundreds, so each test gives it all back."""
    yield
    gc.unfreeze()


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns("README.md"))
    return repo


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(processing_seconds=0.2) as srv:
        yield srv


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sandbox: SandboxServer
) -> Iterator[object]:
    """``cli(repo, "status", "--json")`` runs the real command against the sandbox."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.setenv("BATCH_OPS_HTTP_TIMEOUT", "10")

    def run(repo: Path, *args: str) -> Result:
        capsys.readouterr()
        code = main([args[0], "--repo", str(repo), *args[1:]])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
