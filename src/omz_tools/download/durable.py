"""Moved to :mod:`omz_tools.localstate`; these names stay importable from here because the
converter and the quantizer import them from this module."""

from omz_tools.localstate import (  # noqa: F401
    NotRegularFile, describe_entry, fsync_dir, fsync_file, is_link_error, open_regular, remove_foreign,
)
