"""Exceptions of the download engine. Their messages are meant for the user as they are."""

from __future__ import annotations

from typing import Optional


class DownloadError(Exception):
    """A file could not be fetched from one source; ``str(exc)`` is a one-paragraph explanation."""


class TransientError(DownloadError):
    """Worth retrying: connection errors, timeouts, 408/429/5xx, a short body."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DownloadError):
    """Retrying this source cannot help (404, 403, a body longer than the registry says, HTML...)."""


class LocalWriteError(PermanentError):
    """Writing the .part failed (disk full, permissions): the network is not to blame."""


class RestartError(TransientError):
    """The kept .part cannot be continued (bad Content-Range, 416); retry from byte 0 at once."""


class VerificationError(DownloadError):
    """The whole body arrived but its hash is wrong; ``resumed`` tells whether a kept prefix was used."""

    def __init__(self, message: str, resumed: bool = False):
        super().__init__(message)
        self.resumed = resumed


class Interrupted(Exception):
    """The run was cancelled (Ctrl-C); .part files are kept for the next run."""
