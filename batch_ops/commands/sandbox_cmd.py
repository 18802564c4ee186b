"""`batch-ops sandbox serve`: the local Message Batches emulator, for demos and tests."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sandbox", help="the local API emulator (no key, no network)")
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("serve", help="serve the emulator until interrupted")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument(
        "--processing-seconds", type=float, default=5.0, help="how long each batch stays in progress"
    )
    s.add_argument("--scenario", help="JSON file of injected faults (see README)")
    s.add_argument(
        "--max-body-bytes", type=int, default=None, help="largest request body accepted (default: the API's 256 MB)"
    )
    s.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from batch_ops.sandbox import serve as serve_forever

    return serve_forever(
        args.host, args.port, args.processing_seconds, args.scenario, max_body_bytes=args.max_body_bytes
    )
