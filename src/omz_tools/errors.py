"""The root of every exception the project raises on purpose.

``str(exc)`` is the whole user-facing message (one paragraph: what, where, expected vs found,
what was done, what to try) and ``exc.exit_code`` the status a command exits with when the error
ends it (0 ok, 1 failure, 2 usage, 130 interrupted; see ``omz_tools.cli.common``). Library code
raises these; only ``omz_tools.cli`` turns them into messages and exit codes, so a command catches
``OmzError`` and never has to know every module's classes.
"""

from __future__ import annotations


class OmzError(Exception):
    """Base of the project's errors; the message is meant for the user as it is."""

    exit_code: int = 1

    @property
    def message(self) -> str:
        return str(self)


class OmzUsageError(OmzError):
    """The command line or the arguments are wrong (exit 2)."""

    exit_code = 2


class OmzInterrupted(OmzError):
    """The run was cancelled (Ctrl-C); work in progress was kept where it can be resumed (exit 130)."""

    exit_code = 130
