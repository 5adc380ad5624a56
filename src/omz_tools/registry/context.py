"""The validation context (which file, model and key a problem is about) and the short, quoted
renderings of found values that every registry message uses."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from omz_tools.registry.schema import RegistryError
from omz_tools.wording import brief, cut as _cut, quoted as _q  # noqa: F401 (_cut, _q: also for parse, schema)


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


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", bytes: "binary data", set: "set", tuple: "tuple"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = brief(value, 60)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{_kind(value)} {text}"
