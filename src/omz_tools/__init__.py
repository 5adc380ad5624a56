"""omz_tools: download models described in an Open Model Zoo style registry, verify every byte,
and convert them to OpenVINO IR.

Public API (imported lazily, so ``import omz_tools`` stays cheap and never pulls in openvino):

- ``omz_tools.Registry``: the registries (built-in, ``--registry`` folders, ``$OMZ_REGISTRY``).
- ``omz_tools.download(names, output_dir=..., jobs=...)``: fetch and verify model files.
- ``omz_tools.convert(name, ...)`` and ``omz_tools.load(name, precision=...)``: IR conversion.

This package shares its install folder with openvino-dev's own ``omz_tools`` modules
(``_common.py``, ``omz_downloader.py``, ``models/`` ...); none of our paths collide with theirs.
"""

import pkgutil as _pkgutil

# openvino-dev's omz_tools modules live in site-packages/omz_tools without an __init__.py.
# Installed normally we share that folder; from a source checkout (editable install) this
# keeps their modules importable as omz_tools.* too.
__path__ = _pkgutil.extend_path(__path__, __name__)

from omz_tools.version import __version__  # noqa: E402

_LAZY = {
    "Registry": ("omz_tools.registry", "Registry"),
    "RegistryError": ("omz_tools.registry", "RegistryError"),
    "download": ("omz_tools.download", "download"),
    "convert": ("omz_tools.convert", "convert"),
    "load": ("omz_tools.convert", "load"),
    "evaluate": ("omz_tools.accuracy", "evaluate"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'omz_tools' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
