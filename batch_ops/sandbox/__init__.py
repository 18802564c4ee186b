"""A local emulator of the Anthropic Message Batches and Messages APIs, for tests and demos.

It speaks only the wire format (no imports from the rest of ``batch_ops``) and is reached by the
real ``anthropic`` SDK through its base URL::

    with SandboxServer(processing_seconds=0.5) as srv:
        client = anthropic.Anthropic(api_key="sk-test", base_url=srv.url)

Batches stay ``in_progress`` for ``processing_seconds`` after creation and then end; results
stream as JSONL in a shuffled order. Faults (HTTP errors, ``retry-after``, slow answers, dropped
connections, per-request errored / expired / canceled results) come from a scenario, see
:mod:`batch_ops.sandbox.scenario`. Answers, token counts and prompt caching come from a
deterministic stand-in model, see :mod:`batch_ops.sandbox.model`.

Admin endpoints, never faulted and not counted: ``POST /_sandbox/scenario`` (replace the
scenario), ``GET /_sandbox/stats`` (calls and batch summaries), ``POST /_sandbox/reset``.
"""

from .scenario import ScenarioError
from .server import SandboxServer, serve

__all__ = ["SandboxServer", "ScenarioError", "serve"]
