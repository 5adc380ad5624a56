"""Documented resource bounds that a user may raise through the environment.

Every bound on what an untrusted file may make the tools allocate, read or compute (a tensor's
size, a file's size, an image's pixels...) is one ``Limit``: a name for messages, the environment
variable that overrides it, its default and its kind (``size``: bytes, optionally with a binary
K/M/G/T suffix; ``count``: a positive whole number). ``Limit.value()`` reads the variable each
time, so a test or a long-lived process sees a change at once; a value that does not parse is one
``LimitError`` naming the variable, what was found and what to give.

The README's "Security and robustness" section lists every ``Limit`` with its default and variable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from omz_tools.errors import OmzUsageError

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)


class LimitError(OmzUsageError):
    """An environment variable that sets a limit does not parse (exit 2, like a bad option)."""


def parse_size(raw: str) -> Optional[int]:
    """'4096', '64K', '2 GiB', '1t' -> bytes (binary units); None if it does not parse or is 0."""
    match = _SIZE.fullmatch(raw.strip())
    if not match or int(match.group(1)) <= 0:
        return None
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def _parse_count(raw: str) -> Optional[int]:
    text = raw.strip().replace("_", "")
    return int(text) if text.isdigit() and int(text) > 0 else None


@dataclass(frozen=True)
class Limit:
    """One bound: ``what`` names it in messages ("the IR check's tensor size")."""

    what: str
    env_var: str
    default: int
    kind: str = "size"  # "size" (bytes) or "count"

    def value(self, env: Optional[Mapping[str, str]] = None) -> int:
        env = os.environ if env is None else env
        raw = env.get(self.env_var, "").strip()
        if not raw:
            return self.default
        parsed = parse_size(raw) if self.kind == "size" else _parse_count(raw)
        if parsed is None:
            expected = ("a positive number of bytes, optionally with K, M, G or T (e.g. 8G)"
                        if self.kind == "size" else "a positive whole number")
            raise LimitError(f"{self.env_var}={raw!r} does not set {self.what}: expected {expected}; "
                             f"unset it to use the default, {self.describe_default()}.")
        return parsed

    def describe_default(self) -> str:
        if self.kind == "size":
            from omz_tools.wording import human_size
            return human_size(self.default)
        return f"{self.default:,}"

    def hint(self) -> str:
        """The sentence a message ends with: how to raise the bound."""
        return f"If the file is trusted and needs more, raise {self.env_var} (now {self._now()})."

    def _now(self) -> str:
        try:
            current = self.value()
        except LimitError:
            return "not a valid value"
        if self.kind == "size":
            from omz_tools.wording import human_size
            return human_size(current)
        return f"{current:,}"
