"""The model registry: schema, loading, selection."""

from omz_tools.registry.loader import REGISTRY_ENV, Registry, builtin_registry
from omz_tools.registry.schema import (
    KNOWN_FRAMEWORKS, MO_FRAMEWORKS, Checksum, FileSource, InputInfo, Model, ModelFile, RegexReplace, RegistryError,
    RegistryErrors, UnpackArchive,
)
from omz_tools.registry.selection import (
    NoMatchError, UsageError, output_path_conflicts, read_list_file, resolve, select_models,
)

__all__ = [
    "REGISTRY_ENV", "Registry", "builtin_registry", "Checksum", "FileSource", "InputInfo", "Model",
    "ModelFile", "RegexReplace", "RegistryError", "RegistryErrors", "UnpackArchive", "NoMatchError", "UsageError",
    "KNOWN_FRAMEWORKS", "MO_FRAMEWORKS", "output_path_conflicts", "read_list_file", "resolve", "select_models",
]
