"""Which NNCF release goes with the OpenVINO beside it, checked before the quantizer does any work.

NNCF's package metadata does not say which openvino it needs, so pip happily installs the newest NNCF
beside openvino-dev 2024.6's openvino 2024.6, where it fails deep inside (``Type`` has no attribute
``u2``); an old NNCF beside a new openvino fails too (nncf 2.15 with openvino 2026: "could not infer
the backend"). Each NNCF release is made for one OpenVINO release (NNCF's docs/Installation.md,
"Corresponding versions"): the table below, by OpenVINO ``year.minor``. Versions are read from the
installed distributions' metadata, so neither package is imported to check them.

``OMZ_NNCF_CHECK=off`` skips the check (a pair you have tested yourself)."""

from __future__ import annotations

import os
import re
from typing import Optional, Tuple

from omz_tools.errors import OmzError

ENV = "OMZ_NNCF_CHECK"

# OpenVINO (year, minor) -> the NNCF releases made for it: [low, high).
PAIRS = {
    (2024, 6): ((2, 14, 1), (2, 15)),
    (2025, 0): ((2, 15), (2, 16)),
    (2025, 1): ((2, 16), (2, 17)),
    (2025, 2): ((2, 17), (2, 18)),
    (2025, 3): ((2, 18), (2, 19)),
    (2025, 4): ((2, 19), (3, 0)),
    (2026, 0): ((3, 0), (3, 1)),
    (2026, 1): ((3, 1), (3, 2)),
    (2026, 2): ((3, 2), (3, 3)),
    (2026, 3): ((3, 3), (3, 4)),
    (2026, 4): ((3, 4), (3, 5)),
}


class NNCFVersionError(OmzError):
    """The installed NNCF is not the release made for the installed OpenVINO."""


def _numbers(version: str) -> Tuple[int, ...]:
    """'2024.6.0' -> (2024, 6, 0); '2025.0.0.dev20241212' -> (2025, 0, 0)."""
    found = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in found.group(0).split(".")) if found else ()


def _text(numbers: Tuple[int, ...]) -> str:
    return ".".join(map(str, numbers))


def wanted(openvino: str) -> Optional[Tuple[tuple, Optional[tuple]]]:
    """The NNCF releases [low, high) made for ``openvino`` (high None: any newer, for an openvino
    newer than the table); None for an openvino older than the table."""
    release = _numbers(openvino)[:2]
    if release in PAIRS:
        return PAIRS[release]
    newest = max(PAIRS)
    return (PAIRS[newest][0], None) if release > newest else None


def requirement(openvino: str) -> str:
    """The pip requirement of the NNCF made for ``openvino``: "nncf>=2.14.1,<2.15"."""
    pair = wanted(openvino)
    if pair is None:
        return "nncf"
    low, high = pair
    return f"nncf>={_text(low)}" + (f",<{_text(high)}" if high else "")


def problem(openvino: str, nncf: str) -> str:
    """Why ``nncf`` cannot run beside ``openvino`` (empty when it can)."""
    pair = wanted(openvino)
    if pair is None:
        oldest = min(PAIRS)
        return (f"openvino {openvino} is older than omz-quantizer supports (openvino {_text(oldest)}, with "
                f"{requirement(_text(oldest))}); upgrade openvino")
    low, high = pair
    have = _numbers(nncf)
    if have >= low and (high is None or have < high):
        return ""
    made_for = [_text(ov) for ov, (lo, hi) in sorted(PAIRS.items()) if lo <= have < hi]
    other = f"; nncf {nncf} is made for openvino {made_for[0]}" if made_for else ""
    return (f"nncf {nncf} does not go with openvino {openvino} (NNCF makes each release for one OpenVINO "
            f"release{other}): install the NNCF made for this openvino: pip install '{requirement(openvino)}'")


def installed(name: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check(openvino: Optional[str] = None, nncf: Optional[str] = None) -> None:
    """Raise :class:`NNCFVersionError` when NNCF ``nncf`` is not the release made for ``openvino``
    (default: the installed versions; nothing to check while either is missing: the quantizer says
    so where it needs them)."""
    if os.environ.get(ENV, "").strip().lower() in ("off", "0", "no", "false"):
        return
    openvino, nncf = openvino or installed("openvino"), nncf or installed("nncf")
    if openvino is None or nncf is None:
        return
    why = problem(openvino, nncf)
    if why:
        raise NNCFVersionError(f"{why}. Nothing was done. ({ENV}=off skips this check, for a pair you have "
                               f"tested yourself.)")


def missing() -> str:
    """The message for an NNCF that is not installed, naming the release to install."""
    import sys
    openvino = installed("openvino") or ""
    return (f"NNCF is not installed in {sys.executable}; install the release made for openvino "
            f"{openvino or '(not installed)'}: pip install '{requirement(openvino)}'")
