"""Moved to :mod:`omz_tools.localstate`; the quantizer still imports fsync_dir and fsync_file from
here (once it takes them from omz_tools.localstate, this module can go)."""

from omz_tools.localstate import (  # noqa: F401
    NotRegularFile, describe_entry, fsync_dir, fsync_file, is_link_error, open_regular, remove_foreign,
)
