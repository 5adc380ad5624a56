"""Small text helpers every command's messages use (sizes, plurals, the FAILED: list, names from
files made safe to print), kept outside ``download`` and ``convert`` so that neither imports the
other just to phrase something."""

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


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object, keep: str = "") -> str:
    """``text`` with every character a terminal would act on or not show written as a visible escape
    (ESC -> ``\\x1b``, NUL -> ``\\x00``, a newline -> ``\\x0a``, U+202E -> ``\\u202e``): C0 and C1
    controls, DEL, Unicode format characters (bidi overrides and isolates, zero-width ones), line and
    paragraph separators, unpaired surrogates (undecodable bytes of a file name). Names read from files
    (layer and blob names, file names, paths, server answers) go through it before a text line is
    written, so they can neither drive the terminal nor split a one-line entry. ``keep``: characters
    left as they are (``"\\n"`` for a message of several lines). JSON events need none of this:
    ``json.dumps`` writes these characters as JSON escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in text)


def failed_lines(result) -> list:
    """``FAILED:`` then one ``<model>: <why>`` line per failed model (a download or a conversion
    result); a download result's short form (file names and causes) when it has one, since the
    whole paragraph was said once already."""
    briefs = getattr(result, "briefs", None) or {}
    return ["FAILED:"] + [printable(f"{model}: {briefs.get(model) or message}")
                          for model, message in result.failures.items()]
