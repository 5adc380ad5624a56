"""Model selection with Open Model Zoo's semantics: --name, --list, --all."""

from __future__ import annotations

import builtins
import shlex
from pathlib import Path
from typing import Optional

from omz_tools.errors import OmzError, OmzUsageError
from omz_tools.registry.loader import Registry
from omz_tools.registry.schema import RegistryError, RegistryErrors


class UsageError(OmzUsageError):
    """Bad combination of selection options (the CLI exits with 2)."""


class NoMatchError(OmzError):
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


def output_path_conflicts(models: list) -> list:
    """One :class:`RegistryError` per file of ``models`` whose output path (<subdirectory>/<name>)
    another of these models writes too, or that is a folder of another's file or inside another's
    file: nested model folders (``public/a`` with ``b/w.bin``, ``public/a/b`` with ``w.bin``) would
    otherwise overwrite each other's files."""
    files: dict = {}  # output path -> (model, index in its files)
    folders: dict = {}  # folder holding some file -> that (model, index)
    problems = []
    for model in models:
        for leaf in model.leaves():
            for i, file in enumerate(leaf.files):
                path = leaf.subdirectory / file.name
                other = files.get(path) or folders.get(path)
                if other is None:
                    other = next((files[p] for p in path.parents if p in files), None)
                if other is not None and other[0] is not leaf:
                    owner, index = other
                    problems.append(RegistryError(
                        f"expected an output path no other selected model uses, found {path}, which overlaps "
                        f"{owner.subdirectory / owner.files[index].name} of model \"{owner.name}\" "
                        f"(files[{index}].name in {owner.config_dir / 'model.yml'})",
                        leaf.config_dir / "model.yml", leaf.name, f"files[{i}].name"))
                    continue
                files.setdefault(path, (leaf, i))
                for parent in path.parents:
                    folders.setdefault(parent, (leaf, i))
    return problems


def select_models(registry: Registry, *, name: Optional[str] = None, list_file: Optional[Path] = None,
                  all: bool = False) -> list:
    """The selected models, deduplicated by name in first-match order.

    Every invalid selected model is reported, not only the first: one invalid model raises its
    :class:`RegistryError`, several a :class:`RegistryErrors` holding one each. Invalid models
    that are not selected are not read."""
    count = sum([all, name is not None, list_file is not None])
    if count > 1:
        raise UsageError('at most one of "--all", "--name" or "--list" can be specified')
    if count == 0:
        raise UsageError('one of "--print_all", "--all", "--name" or "--list" must be specified')
    errors: list = []
    unmatched: list = []
    selected: dict = {}
    if all:
        selected = {model.name: model for model in registry.load_all(errors)}
    else:
        for pattern in name.split(",") if name is not None else read_list_file(list_file):
            before = len(errors)
            matching = registry.match(pattern, errors)
            if not matching and len(errors) == before:
                unmatched.append(pattern)
            for model in matching:
                selected[model.name] = model
    models = list(selected.values())
    errors += output_path_conflicts(models)
    unique = list({str(e): e for e in errors}.values())  # a model matched by two patterns fails once
    if len(unique) == 1:
        raise unique[0]
    if unique:
        raise RegistryErrors(unique)
    if unmatched:
        raise NoMatchError(unmatched[0])
    return models


def resolve(names=None, *, list_file: Optional[Path] = None, all: bool = False, registries=(),
            registry: Optional[Registry] = None) -> list:
    """The models the commands and the API work on: registry Model objects as given, else names or
    fnmatch patterns (a string, a comma-separated string or a list), ``list_file`` or ``all``,
    matched by :func:`select_models` in ``registry`` (default: the ``registries`` folders, then
    $OMZ_REGISTRY, then the built-in registry)."""
    if hasattr(names, "leaves"):
        return [names]
    if names is not None:
        names = [names] if isinstance(names, str) else list(names)
        if names and builtins.all(hasattr(n, "leaves") for n in names):
            return names
        names = ",".join(str(n) for n in names)
    registry = registry or Registry.from_options([Path(r) for r in registries])
    return select_models(registry, name=names, list_file=list_file, all=all)
