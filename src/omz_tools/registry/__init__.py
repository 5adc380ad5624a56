"""The model registry: schema, loading, selection."""

from omz_tools.registry.loader import REGISTRY_ENV, Registry, builtin_registry
from omz_tools.registry.schema import (
    Checksum, FileSource, InputInfo, Model, ModelFile, RegexReplace, RegistryError, UnpackArchive,
)
from omz_tools.registry.selection import NoMatchError, UsageError, read_list_file, select_models

__all__ = [
    "REGISTRY_ENV", "Registry", "builtin_registry", "Checksum", "FileSource", "InputInfo", "Model",
    "ModelFile", "RegexReplace", "RegistryError", "UnpackArchive", "NoMatchError", "UsageError",
    "read_list_file", "select_models",
]
