"""Where each file may come from: mirrors in order, then the registry's original source.

A mirror is any HTTP server laid out like an output folder (``<mirror>/<subdirectory>/<file
name>``, e.g. nginx serving a previous run's ``-o`` folder). Mirrors need not be trusted: every
source's bytes are checked against the registry's size and hash, and a bad copy simply falls
through to the next candidate. Offline mode has no candidates at all: no connection is made.

This module does not import requests, so offline runs and reruns never pay for it.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Iterable, Mapping, Optional, Sequence
from urllib.parse import quote, urlsplit

from omz_tools.errors import OmzUsageError

MIRROR_ENV = "OMZ_MIRROR"
OFFLINE_ENV = "OMZ_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class SourceConfigError(OmzUsageError, ValueError):
    """A bad --mirror / OMZ_MIRROR / OMZ_OFFLINE value; a usage error (exit 2) for the CLI."""


def check_mirror(url: str, origin: str = "--mirror") -> str:
    """The mirror's base URL without a trailing slash; SourceConfigError when it is not http(s)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceConfigError(
            f"{origin}: expected an http:// or https:// URL of a folder laid out like an output folder "
            f"(e.g. http://mirror.example/omz), found {url!r}.")
    if parts.query or parts.fragment:
        raise SourceConfigError(f"{origin}: expected a URL without '?' or '#' parts, found {url!r}.")
    return url.strip().rstrip("/")


def mirrors_from(options: Sequence[str] = (), env: Optional[Mapping[str, str]] = None) -> list:
    """--mirror values in order, then $OMZ_MIRROR's (space separated); duplicates dropped."""
    env = os.environ if env is None else env
    result: list = []
    for url in options or ():
        base = check_mirror(url, "--mirror")
        if base not in result:
            result.append(base)
    for url in env.get(MIRROR_ENV, "").split():
        base = check_mirror(url, MIRROR_ENV)
        if base not in result:
            result.append(base)
    return result


def offline_from(flag: bool = False, env: Optional[Mapping[str, str]] = None) -> bool:
    """--offline, or OMZ_OFFLINE set to 1/true/yes/on (0/false/no/off/empty: online)."""
    if flag:
        return True
    env = os.environ if env is None else env
    value = env.get(OFFLINE_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SourceConfigError(f"{OFFLINE_ENV}: expected 1 or 0 (or true/false), found {value!r}.")


def mirror_url(base: str, subdirectory: PurePosixPath, name: PurePosixPath) -> str:
    """``<base>/<subdirectory>/<name>`` with each path segment percent-encoded."""
    path = PurePosixPath(subdirectory) / PurePosixPath(name)
    return base + "/" + "/".join(quote(part, safe="") for part in path.parts)


def candidates(subdirectory: PurePosixPath, file, mirrors: Iterable[str] = (), *,
               offline: bool = False) -> list:
    """The ordered sources (tasks.Source) for one registry ModelFile of the model at ``subdirectory``:
    each mirror's ``<base>/<subdirectory>/<file>``, then the registry's own source; none offline."""
    if offline:
        return []
    from omz_tools.download.tasks import Source, source_for
    return [Source(url=mirror_url(base, subdirectory, file.name), label=f"mirror {base}")
            for base in mirrors] + [source_for(file.source)]
