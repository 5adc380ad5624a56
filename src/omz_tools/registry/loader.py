"""Finding and loading models in one or more registry folders.

A registry is a folder laid out like Open Model Zoo's ``models/``: any folder
below it holding a ``model.yml`` is a model named after that folder; a folder
holding ``composite-model.yml`` is a composite model whose stages are its
``<composite>-*`` subfolders. Folder names are indexed without reading any
YAML, and a model's YAML is parsed only when that model is asked for, so
``--name se-resnet-101`` reads one file, not the whole tree.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional, Sequence

from omz_tools.registry.schema import Model, RegistryError, _show, parse_composite, parse_model

REGISTRY_ENV = "OMZ_REGISTRY"


def builtin_registry() -> Path:
    """The registry shipped with this package (top-level ``models/`` of the source tree)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "builtin_registry"
    if installed.is_dir():
        return installed
    return here.parent.parent / "models"  # running from a source checkout (src/ layout)


def _load_yaml(path: Path, model: Optional[str] = None):
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "rb") as stream:
            return yaml.load(stream, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "unknown problem").split())
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise RegistryError(f"expected valid YAML, found a syntax error{where}: {problem}{context}",
                            path, model) from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"expected valid YAML, found a syntax error: {' '.join(str(exc).split())}",
                            path, model) from None
    except OSError as exc:
        raise RegistryError(f"expected a readable file, found an error: {exc.strerror}", path, model) from None


@dataclass
class _Entry:
    name: str
    folder: Path
    root: Path
    composite: bool
    stages: list = field(default_factory=list)  # stage folder names, for composites


class _RootIndex:
    """Model folders of one registry root, found by walking the tree (no YAML read)."""

    def __init__(self, root: Path):
        self.root = root
        self.entries: dict[str, _Entry] = {}
        self._problems: list[RegistryError] = []
        if not root.is_dir():
            raise RegistryError("expected a registry folder (holding <group>/<model>/model.yml), "
                                "found no such folder", root)
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            folder_path = Path(folder)
            if "composite-model.yml" in files:
                self._add(self._index_composite(folder_path, dirs))
                dirs[:] = []  # stages are not top-level models
            elif "model.yml" in files and folder_path != root:
                self._add(_Entry(folder_path.name, folder_path, root, composite=False))

    def _index_composite(self, folder: Path, dirs: list) -> _Entry:
        config = folder / "composite-model.yml"
        if (folder / "model.yml").exists():
            raise RegistryError("expected only composite-model.yml in a composite model folder, "
                                "found a model.yml beside it", folder / "model.yml", folder.name)
        stages = []
        for sub in dirs:
            for deeper in (folder / sub).rglob("model.yml"):
                if deeper.parent != folder / sub:
                    raise RegistryError("expected stage model.yml files only in direct subfolders of "
                                        "the composite model folder, found one deeper", deeper, folder.name)
            if (folder / sub / "model.yml").exists():
                if not sub.startswith(folder.name + "-"):
                    raise RegistryError(f"expected stage folder names starting with '{folder.name}-', "
                                        f"found '{sub}'", config, folder.name)
                stages.append(sub)
        return _Entry(folder.name, folder, self.root, composite=True, stages=stages)

    def _add(self, entry: _Entry) -> None:
        other = self.entries.get(entry.name)
        if other is not None:
            raise RegistryError(f"expected unique model names in a registry, found the folders "
                                f"{other.folder} and {entry.folder}", self.root, entry.name)
        self.entries[entry.name] = entry


class Registry:
    """Models from several registry folders; an earlier folder's model shadows a later one's by name."""

    def __init__(self, roots: Sequence[Path]):
        self.roots = [Path(r).resolve() for r in roots]
        self._index: Optional[dict[str, _Entry]] = None
        self._cache: dict[str, Model] = {}

    @classmethod
    def from_options(cls, registries: Iterable[Path] = (), env: Optional[dict] = None,
                     include_builtin: bool = True) -> "Registry":
        """``--registry`` folders first, then ``$OMZ_REGISTRY`` (os.pathsep separated), then the built-in one."""
        env = os.environ if env is None else env
        roots = [Path(p) for p in registries]
        roots += [Path(p) for p in env.get(REGISTRY_ENV, "").split(os.pathsep) if p]
        if include_builtin:
            roots.append(builtin_registry())
        return cls(roots)

    @property
    def index(self) -> dict[str, _Entry]:
        if self._index is None:
            merged: dict[str, _Entry] = {}
            for root in self.roots:
                for name, entry in _RootIndex(root).entries.items():
                    merged.setdefault(name, entry)  # earlier roots win
            self._index = dict(sorted(merged.items()))
        return self._index

    def names(self) -> list:
        """Names of the top-level models (composites, not their stages), sorted."""
        return list(self.index)

    def load(self, name: str) -> Model:
        """Parse and validate one top-level model (a composite with all its stages)."""
        if name not in self._cache:
            entry = self.index.get(name)
            if entry is None:
                raise RegistryError(f"no model named \"{name}\" in {', '.join(map(str, self.roots))}")
            self._cache[name] = self._load_composite(entry) if entry.composite else self._load_model(entry)
        return self._cache[name]

    def load_all(self) -> list:
        return [self.load(name) for name in self.index]

    def _load_model(self, entry: _Entry, composite_name: Optional[str] = None) -> Model:
        config = entry.folder / "model.yml"
        return parse_model(_load_yaml(config, entry.name), name=entry.name,
                           subdirectory=PurePosixPath(entry.folder.relative_to(entry.root).as_posix()),
                           registry_root=entry.root, config=config, composite_model_name=composite_name)

    def _load_composite(self, entry: _Entry) -> Model:
        config = entry.folder / "composite-model.yml"
        data = _load_yaml(config, entry.name)
        if not isinstance(data, dict):
            raise RegistryError(f"expected a mapping, found {_show(data)}", config, entry.name, "(top level)")
        if not entry.stages:
            raise RegistryError(f"expected at least one stage folder {entry.name}-* holding a model.yml, "
                                "found none", config, entry.name)
        order = data.get("stages_order")
        if not order:
            raise RegistryError(f"expected a list of stage folder names ({', '.join(entry.stages)}), "
                                f"found {'none' if order is None else _show(order)}",
                                config, entry.name, "stages_order")
        if not isinstance(order, list):
            raise RegistryError(f"expected a list of stage folder names, found {_show(order)}",
                                config, entry.name, "stages_order")
        stages = []
        for i, stage in enumerate(order):
            if stage not in entry.stages:
                raise RegistryError(f"expected a stage folder {entry.folder / str(stage)} with a model.yml, "
                                    f"found none", config, entry.name, f"stages_order[{i}]")
            stage_entry = _Entry(stage, entry.folder / stage, entry.root, composite=False)
            stages.append(self._load_model(stage_entry, composite_name=entry.name))
        return parse_composite(data, name=entry.name,
                               subdirectory=PurePosixPath(entry.folder.relative_to(entry.root).as_posix()),
                               registry_root=entry.root, config=config, stages=stages)

    def match(self, pattern: str) -> list:
        """Models matching one fnmatch pattern (case-sensitive), as Open Model Zoo's tools match them:
        a top-level model by its name, else the stages of a composite model by theirs."""
        found = []
        for name, entry in self.index.items():
            if fnmatch.fnmatchcase(name, pattern):
                found.append(self.load(name))
            elif entry.composite and any(fnmatch.fnmatchcase(s, pattern) for s in entry.stages):
                found += [stage for stage in self.load(name).model_stages
                          if fnmatch.fnmatchcase(stage.name, pattern)]
        return found
