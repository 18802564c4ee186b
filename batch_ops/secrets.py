"""Keeping credentials out of everything batch-ops prints or writes.

Errors are rendered from their parts (status, error type, the provider's short message), never
from an exception's ``str()`` with its request, headers or body. The provider's message is still
text from a server (or a proxy in between) and may quote what it was sent, so it goes through
``redact`` too: the values of the credential variables in the environment, and anything shaped
like an Anthropic or GitHub token, are replaced before the text reaches a log, a file or an issue.
"""

from __future__ import annotations

import os
import re

SECRET_ENV_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
REDACTED = "[redacted]"
_MIN_SECRET_LEN = 8  # a shorter value would blank out ordinary words

_TOKEN_SHAPES = re.compile(
    r"sk-ant-[A-Za-z0-9_-]{4,}"  # Anthropic API and admin keys
    r"|gh[pousr]_[A-Za-z0-9]{8,}"  # GitHub classic tokens (ghp_, gho_, ghu_, ghs_, ghr_)
    r"|github_pat_[A-Za-z0-9_]{8,}"  # GitHub fine-grained tokens
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's value
    r"|(?i:x-api-key)[\"']?\s*[:=]\s*[\"']?[^\s\"',;)]{4,}"  # "x-api-key: ..." quoted back
)


def _known_values(extra: tuple[str, ...]) -> list[str]:
    values = [os.environ.get(name, "") for name in SECRET_ENV_VARS] + list(extra)
    return sorted({v for v in values if len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True)


def redact(text: str, *extra: str) -> str:
    """``text`` with credential values (from the environment and ``extra``) and token shapes replaced."""
    for value in _known_values(extra):
        text = text.replace(value, REDACTED)
    return _TOKEN_SHAPES.sub(REDACTED, text)
