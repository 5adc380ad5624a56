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

from omz_tools import yamlbounds
from omz_tools.registry.schema import Model, RegistryError, _q, _show, parse_composite, parse_model

REGISTRY_ENV = "OMZ_REGISTRY"


def builtin_registry() -> Path:
    """The registry shipped with this package (top-level ``models/`` of the source tree)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "builtin_registry"
    if installed.is_dir():
        return installed
    return here.parent.parent / "models"  # running from a source checkout (src/ layout)


def _load_yaml(path: Path, model: Optional[str] = None):
    """A registry file's value, read within omz_tools.yamlbounds' limits (regular file, size, aliases,
    depth, integer length); each refusal is a RegistryError naming the file and the model."""
    try:
        return yamlbounds.load(path)
    except yamlbounds.YamlBoundsError as exc:
        raise RegistryError(exc.problem, path, model, exc.key) from None


@dataclass
class _Entry:
    name: str
    folder: Path
    root: Path
    composite: bool
    stages: list = field(default_factory=list)  # stage folder names, for composites
    # A problem found while indexing (a misplaced model.yml, a name used twice): loading this model
    # raises it; other models stay usable.
    problem: Optional[RegistryError] = None


class _RootIndex:
    """Model folders of one registry root, found by walking the tree (no YAML read)."""

    def __init__(self, root: Path):
        self.root = root
        self.entries: dict[str, _Entry] = {}
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
        entry = _Entry(folder.name, folder, self.root, composite=True)
        try:
            entry.stages = self._composite_stages(folder, dirs)
        except RegistryError as exc:
            entry.problem = exc
        return entry

    @staticmethod
    def _composite_stages(folder: Path, dirs: list) -> list:
        """The stage folders (direct subfolders holding a model.yml), in name order."""
        config = folder / "composite-model.yml"
        if os.path.lexists(folder / "model.yml"):
            raise RegistryError("expected only composite-model.yml in a composite model folder, "
                                "found a model.yml beside it", folder / "model.yml", folder.name)
        stages = []
        for sub in sorted(dirs):
            for deeper in (folder / sub).rglob("model.yml"):
                if deeper.parent != folder / sub:
                    raise RegistryError("expected stage model.yml files only in direct subfolders of "
                                        "the composite model folder, found one deeper", deeper, folder.name)
            if os.path.lexists(folder / sub / "model.yml"):
                if not sub.startswith(folder.name + "-"):
                    raise RegistryError(f"expected stage folder names starting with '{folder.name}-', "
                                        f"found {_q(sub)}", config, folder.name)
                stages.append(sub)
        return stages

    def _add(self, entry: _Entry) -> None:
        other = self.entries.get(entry.name)
        if other is not None:
            entry = _Entry(entry.name, other.folder, self.root, other.composite, other.stages, RegistryError(
                f"expected unique model names in a registry, found the folders {other.folder} and {entry.folder}",
                self.root, entry.name) if other.problem is None or "unique" not in other.problem.problem
                else other.problem)
        self.entries[entry.name] = entry


class Registry:
    """Models from several registry folders; an earlier folder's model shadows a later one's by name."""

    def __init__(self, roots: Sequence[Path]):
        self.roots = [Path(r).resolve() for r in roots]
        self._index: Optional[dict[str, _Entry]] = None
        self._cache: dict[str, "Model | RegistryError"] = {}

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
            try:
                if entry.problem is not None:
                    raise entry.problem
                self._cache[name] = self._load_composite(entry) if entry.composite else self._load_model(entry)
            except RegistryError as exc:
                self._cache[name] = exc  # asked again (another pattern), it fails the same way, unread
        found = self._cache[name]
        if isinstance(found, RegistryError):
            raise found
        return found

    def load_all(self, errors: Optional[list] = None) -> list:
        """Every top-level model. With ``errors`` (a list), an invalid model is appended there and
        skipped instead of raised, so one run can report all of them."""
        models = []
        for name in self.index:
            model = self._load_or_collect(name, errors)
            if model is not None:
                models.append(model)
        return models

    def _load_or_collect(self, name: str, errors: Optional[list]) -> Optional[Model]:
        if errors is None:
            return self.load(name)
        try:
            return self.load(name)
        except RegistryError as exc:
            errors.append(exc)
            return None

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
        # Open Model Zoo before 2022 had no stages_order: the stages ran in folder name order.
        order = data.get("stages_order", entry.stages)
        if not isinstance(order, list) or not order:
            raise RegistryError(f"expected a list of stage folder names ({', '.join(entry.stages)}), "
                                f"found {_show(order)}", config, entry.name, "stages_order")
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

    def match(self, pattern: str, errors: Optional[list] = None) -> list:
        """Models matching one fnmatch pattern (case-sensitive), as Open Model Zoo's tools match them:
        a top-level model by its name, else the stages of a composite model by theirs.

        With ``errors`` (a list), each matching model that is invalid is appended there instead of
        raised."""
        found = []
        for name, entry in self.index.items():
            if fnmatch.fnmatchcase(name, pattern):
                model = self._load_or_collect(name, errors)
                if model is not None:
                    found.append(model)
            elif entry.composite and any(fnmatch.fnmatchcase(s, pattern) for s in entry.stages):
                model = self._load_or_collect(name, errors)
                if model is not None:
                    found += [stage for stage in model.model_stages if fnmatch.fnmatchcase(stage.name, pattern)]
        return found
