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
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional, Sequence

from omz_tools.registry.schema import Model, RegistryError, _cut, _q, _show, parse_composite, parse_model

REGISTRY_ENV = "OMZ_REGISTRY"


def builtin_registry() -> Path:
    """The registry shipped with this package (top-level ``models/`` of the source tree)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "builtin_registry"
    if installed.is_dir():
        return installed
    return here.parent.parent / "models"  # running from a source checkout (src/ layout)


# Bounds on what one registry file may make the loader do. Open Model Zoo's largest model.yml is about
# 21 kB and uses no YAML alias; these are far above any real entry and far below harm.
MAX_CONFIG_BYTES = 4 << 20
# Nodes plus scalar characters that aliases may add by repeating their anchors (a "billion laughs"
# file of 637 bytes otherwise expands to gigabytes).
MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 64  # levels of nesting (libyaml itself stops at 1000)
MAX_INT_DIGITS = 100  # Python refuses to read integers beyond 4300 digits, with a ValueError
_INT_TAG = "tag:yaml.org,2002:int"


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _read_config(path: Path, model: Optional[str]) -> bytes:
    """The bytes of a registry file, read only if it is a regular file of a sane size: a FIFO would
    block the open or the read forever, a device could stream without end."""
    def refuse(mode: int) -> None:
        raise RegistryError(f"expected a regular file, found {_file_kind(mode)}", path, model)

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            refuse(info.st_mode)
        # O_NONBLOCK: should the path be swapped for a FIFO after the stat, the open still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                refuse(info.st_mode)
            chunks, size = [], 0
            while size <= MAX_CONFIG_BYTES:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise RegistryError(f"expected a readable file, found an error: {exc.strerror}", path, model) from None
    if size > MAX_CONFIG_BYTES:
        raise RegistryError(f"expected a file of at most {MAX_CONFIG_BYTES >> 20} MiB, found a larger one",
                            path, model)
    return b"".join(chunks)


def _check_nodes(root, path: Path, model: Optional[str]) -> None:
    """Refuse, before anything is built from it, a YAML node graph that would expand without bound:
    aliases repeating more than MAX_ALIAS_EXPANSION nodes and characters in all, an alias inside its
    own anchor (a recursive value), nesting deeper than MAX_DEPTH, integers too long to read."""
    import yaml
    weights: dict = {}  # id(node) -> nodes + characters of its full expansion
    open_nodes: set = set()
    alias_weight = 0

    def where(node) -> str:
        mark = node.start_mark
        return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""

    def child_key(key: str, part: str) -> str:
        return f"{key}.{part}" if key else part

    def visit(node, key: str, depth: int) -> int:
        nonlocal alias_weight
        ident = id(node)
        if ident in open_nodes:
            raise RegistryError(f"expected no recursive YAML alias, found an alias inside its own anchor (the "
                                f"anchor{where(node)})", path, model, key or "(top level)")
        if ident in weights:  # a second appearance of a node: an alias to an anchor
            alias_weight += weights[ident]
            if alias_weight > MAX_ALIAS_EXPANSION:
                raise RegistryError(f"expected YAML aliases to expand to at most {MAX_ALIAS_EXPANSION} nodes "
                                    f"and characters in all, found more (repeating the anchor{where(node)})",
                                    path, model, key or "(top level)")
            return weights[ident]
        if depth > MAX_DEPTH:
            raise RegistryError(f"expected at most {MAX_DEPTH} levels of nesting, found more{where(node)}",
                                path, model, key or "(top level)")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise RegistryError(f"expected an integer of at most {MAX_INT_DIGITS} digits, found one of "
                                    f"{len(node.value)} characters{where(node)}", path, model, key or "(top level)")
            weight = 1 + len(node.value)
        else:
            open_nodes.add(ident)
            weight = 1
            if isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    weight += visit(item, f"{key}[{i}]", depth + 1)
            else:
                for name, value in node.value:
                    weight += visit(name, key, depth + 1)
                    part = name.value if isinstance(name, yaml.ScalarNode) else "?"
                    if len(part) > 40 or not part.isprintable():
                        part = _q(part, 40)
                    weight += visit(value, child_key(key, part), depth + 1)
            open_nodes.discard(ident)
        weights[ident] = weight
        return weight

    visit(root, "", 0)


def _load_yaml(path: Path, model: Optional[str] = None):
    import yaml
    text = _read_config(path, model)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, path, model)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "unknown problem").split())
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise RegistryError(f"expected valid YAML, found a syntax error{where}: {_cut(problem)}{context}",
                            path, model) from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"expected valid YAML, found a syntax error: {_cut(' '.join(str(exc).split()))}",
                            path, model) from None
    except RegistryError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors on untrusted text: ValueError,
        # KeyError (!!bool maybe), TypeError...: a scalar that cannot be built (2020-13-45 as a date).
        raise RegistryError(f"expected YAML values that can be read, found one that cannot "
                            f"({_cut(' '.join(str(exc).split()), 120)})", path, model) from None
    finally:
        loader.dispose()


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
