"""A pre-imported process that forks one child per batch-ops command, for the crash test.

Importing the SDK costs ~1.5 s per process; forking from a process that already did it costs
milliseconds, so the crash test can afford many runs. Each child is an ordinary process running
``batch_ops.cli.main``; the crash test kills it with SIGKILL, through the engine's crashpoint hook
or, here, after a delay. This process has no threads, so forking it is safe.

Protocol, one JSON object per line: on stdin ``{"argv": [...], "env": {...}, "out": PATH,
"kill_after": SECONDS or null}``; on stdout ``{"pid": N}`` once the child runs, then
``{"status": CODE}`` (negative: killed by that signal) once it is reaped.
"""

from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import sys
import time

from batch_ops.cli import main


def _child(request: dict[str, object], out_path: str) -> None:
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    random.seed()
    # A child that hangs says where, in its log, instead of stalling the test silently.
    faulthandler.dump_traceback_later(60, exit=True)
    env = request.get("env") or {}
    assert isinstance(env, dict)
    for key, value in env.items():
        if value is None:
            os.environ.pop(str(key), None)
        else:
            os.environ[str(key)] = str(value)
    argv = request["argv"]
    assert isinstance(argv, list)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, kill_after: float | None) -> int:
    started = time.monotonic()
    killed = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if kill_after is not None and not killed and time.monotonic() - started >= kill_after:
            # Still ours and not yet reaped, so the pid cannot have been reused.
            os.kill(pid, signal.SIGKILL)
            killed = True
        time.sleep(0.002)


def _warm() -> None:
    """Do once here what every child would otherwise do first: lazy imports, client set-up."""
    from anthropic.types.messages import MessageBatch

    from batch_ops.providers.anthropic import AnthropicProvider

    AnthropicProvider(api_key="warm-up", base_url="http://127.0.0.1:9")
    MessageBatch.model_json_schema()


def serve() -> None:
    _warm()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, str(request["out"]))
        print(json.dumps({"pid": pid}), flush=True)
        kill_after = request.get("kill_after")
        status = _wait(pid, float(kill_after) if kill_after is not None else None)
        print(json.dumps({"status": status}), flush=True)


if __name__ == "__main__":
    serve()
