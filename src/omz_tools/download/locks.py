"""Moved to :mod:`omz_tools.locks` (the converter locks with it too); kept importable from here."""

from omz_tools.locks import DEFAULT_TIMEOUT, LockTimeout, PathLock, lock_path_for  # noqa: F401
