"""The validation context (which file, model and key a problem is about) and the short, quoted
renderings of found values that every registry message uses."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from omz_tools.registry.schema import RegistryError


# -- validation helpers ------------------------------------------------------------------------

class _Ctx:
    """Where we are while validating: builds RegistryErrors with the right file/model/key."""

    def __init__(self, config: Path, model: str):
        self.config = config
        self.model = model

    def error(self, key: str, problem: str) -> RegistryError:
        return RegistryError(problem, self.config, self.model, key)

    def require(self, mapping: dict, key: str, where: str = ""):
        if key not in mapping:
            raise self.error(f"{where}.{key}" if where else key,
                             "expected this required key, found no such key")
        return mapping[key]

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, found {_show(value)}")
        return value

    def enum(self, key: str, value: Any, known) -> str:
        self.string(key, value)
        if value not in known:
            raise self.error(key, f"expected one of {', '.join(sorted(known))}; found {_q(value)}")
        return value

    def nonneg_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(key, f"expected a non-negative integer, found {_show(value)}")
        return value

    def mapping(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, found {_show(value)}")
        return value

    def list(self, key: str, value: Any) -> list:
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, found {_show(value)}")
        return value

    def relative_path(self, key: str, value: Any) -> PurePosixPath:
        self.string(key, value)
        path = PurePosixPath(value)
        if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or path.is_absolute():
            raise self.error(key, f"expected a relative path, found the absolute path {_q(value)}")
        if ".." in path.parts or ".." in PurePosixPath(value.replace("\\", "/")).parts:
            raise self.error(key, f"expected a path inside the model folder, found {_q(value)} (contains '..')")
        if value in ("", "."):
            raise self.error(key, "expected a file name, found an empty path")
        return path


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _q(text: str, limit: int = 200) -> str:
    """repr of a string, cut to ``limit`` characters first (never repr a huge value whole)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _brief(value: Any, limit: int, depth: int = 0) -> str:
    """About ``limit`` characters of repr(value), built piece by piece: a value may be huge, so it
    is never formatted whole first (a long string, a big integer, a long or deep list)."""
    if isinstance(value, str):
        return _q(value, limit)
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
            part = (f"{_brief(item[0], limit, depth + 1)}: {_brief(item[1], limit, depth + 1)}"
                    if isinstance(value, dict) else _brief(item, limit, depth + 1))
            parts.append(part)
            used += len(part) + 2
        return brackets[0] + ", ".join(parts) + brackets[1]
    text = repr(value)
    return text[:limit] + ("..." if len(text) > limit else "")


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", bytes: "binary data", set: "set", tuple: "tuple"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = _brief(value, 60)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{_kind(value)} {text}"
