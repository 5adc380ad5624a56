"""Exceptions of the download engine. Their messages are meant for the user as they are.

``str(exc)`` is the whole paragraph; ``exc.brief`` the root cause in a few words, for retry lines;
``exc.network`` says the network (not the file or the registry) is what failed, so the final
message can point to --mirror, --cache_dir and --offline.
"""

from __future__ import annotations

from typing import Optional

from omz_tools.errors import OmzError, OmzInterrupted


class DownloadError(OmzError):
    """A file could not be fetched from one source; ``str(exc)`` is a one-paragraph explanation."""

    def __init__(self, message: str, *, brief: Optional[str] = None, network: bool = False):
        super().__init__(message)
        self.brief = brief or message
        self.network = network


class TransientError(DownloadError):
    """Worth retrying: connection errors, timeouts, 408/429/5xx, a short body."""

    def __init__(self, message: str, retry_after: Optional[float] = None, *, brief: Optional[str] = None,
                 network: bool = False):
        super().__init__(message, brief=brief, network=network)
        self.retry_after = retry_after


class PermanentError(DownloadError):
    """Retrying this source cannot help (404, 403, a body longer than the registry says, HTML...)."""


class LocalWriteError(PermanentError):
    """Writing the .part failed (disk full, permissions): the network is not to blame."""


class RestartError(TransientError):
    """The kept .part cannot be continued (bad Content-Range, 416); retry from byte 0 at once."""


class VerificationError(DownloadError):
    """The whole body arrived but its hash is wrong; ``resumed`` tells whether a kept prefix was used."""

    def __init__(self, message: str, resumed: bool = False, *, brief: Optional[str] = None):
        super().__init__(message, brief=brief)
        self.resumed = resumed


class Interrupted(OmzInterrupted):
    """The run was cancelled (Ctrl-C); .part files are kept for the next run."""
