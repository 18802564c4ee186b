"""Step outputs (``$GITHUB_OUTPUT``): ``name=value`` lines, or heredoc blocks for multi-line values."""

from __future__ import annotations

import os
import uuid


def write_outputs(**values: str) -> bool:
    """Append outputs if ``GITHUB_OUTPUT`` is set; returns whether it was."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in values.items():
            if "\n" in value or "\r" in value:
                delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
                fh.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                fh.write(f"{name}={value}\n")
    return True
