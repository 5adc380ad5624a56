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


def cut(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, ``...`` marking the cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def quoted(text: str, limit: int = 200) -> str:
    """repr of a string, cut to ``limit`` characters first (never repr a huge value whole)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def brief(value: object, limit: int, depth: int = 0) -> str:
    """About ``limit`` characters of repr(value), built piece by piece: a value read from a file may
    be huge, so it is never formatted whole first (a long string, a big integer, a long or deep list)."""
    if isinstance(value, str):
        return quoted(value, limit)
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:limit])) + ("..." if len(value) > limit else "")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 4 * limit:  # str() of a huge int is slow, or refused beyond 4300 digits
            return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        brackets = {list: "[]", tuple: "()", dict: "{}"}.get(type(value), "{}")
        if depth > 8:
            return brackets[0] + "..." + brackets[1]
        parts, used = [], 2
        for item in (value.items() if isinstance(value, dict) else value):
            if used > limit:
                parts.append("...")
                break
            part = (f"{brief(item[0], limit, depth + 1)}: {brief(item[1], limit, depth + 1)}"
                    if isinstance(value, dict) else brief(item, limit, depth + 1))
            parts.append(part)
            used += len(part) + 2
        return brackets[0] + ", ".join(parts) + brackets[1]
    text = repr(value)
    return text[:limit] + ("..." if len(text) > limit else "")


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
