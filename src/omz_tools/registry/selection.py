"""Model selection with Open Model Zoo's semantics: --name, --list, --all."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from omz_tools.registry.loader import Registry


class UsageError(Exception):
    """Bad combination of selection options (the CLI exits with 2)."""


class NoMatchError(Exception):
    """A pattern matched no model (the CLI exits with 1)."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        super().__init__(f'No matching models: "{pattern}"')


def read_list_file(path: Path) -> list:
    """Patterns from a list file: the first shell-like token of each line; '#' starts a comment."""
    patterns = []
    try:
        with open(path, encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                try:
                    tokens = shlex.split(line, comments=True)
                except ValueError as exc:  # an unbalanced quote
                    raise UsageError(f"{path}: line {number}: expected shell-like tokens, found "
                                     f"{line.rstrip()!r} ({str(exc).lower()})") from None
                if tokens:
                    patterns.append(tokens[0])
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: expected a UTF-8 text file, found byte 0x{exc.object[exc.start]:02x} "
                         f"at offset {exc.start}") from None
    except OSError as exc:
        raise UsageError(f"{path}: expected a readable list file, found an error: {exc.strerror}") from None
    return patterns


def select_models(registry: Registry, *, name: Optional[str] = None, list_file: Optional[Path] = None,
                  all: bool = False) -> list:
    """The selected models, deduplicated by name in first-match order."""
    count = sum([all, name is not None, list_file is not None])
    if count > 1:
        raise UsageError('at most one of "--all", "--name" or "--list" can be specified')
    if count == 0:
        raise UsageError('one of "--print_all", "--all", "--name" or "--list" must be specified')
    if all:
        return registry.load_all()
    patterns = name.split(",") if name is not None else read_list_file(list_file)
    selected: dict = {}
    for pattern in patterns:
        matching = registry.match(pattern)
        if not matching:
            raise NoMatchError(pattern)
        for model in matching:
            selected[model.name] = model
    return list(selected.values())
