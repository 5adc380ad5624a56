"""Small text helpers every command's messages use (sizes, plurals, the FAILED: list), kept
outside ``download`` and ``convert`` so that neither imports the other just to phrase something."""

from __future__ import annotations


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB'; bytes up to TiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def plural(n: int, word: str) -> str:
    """'1 attempt', '3 attempts'."""
    return f"{n} {word}{'s' if n != 1 else ''}"


def failed_lines(result) -> list:
    """``FAILED:`` then one ``<model>: <why>`` line per failed model (a download or a conversion
    result); a download result's short form (file names and causes) when it has one, since the
    whole paragraph was said once already."""
    briefs = getattr(result, "briefs", None) or {}
    return ["FAILED:"] + [f"{model}: {briefs.get(model) or message}"
                          for model, message in result.failures.items()]
