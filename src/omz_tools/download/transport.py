"""HTTP: the pooled session, Range/If-Range requests, status triage, retry delays, Google Drive.

requests is imported here only, and this module only when something must be fetched, so that
``--print_all`` and reruns with every file present never pay for it.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass
from typing import Optional

from omz_tools.download.tasks import Source
from urllib.parse import urljoin

import requests
import requests.adapters

# Google Drive's download endpoint. Overridable (this constant, or $OMZ_GOOGLE_DRIVE_URL) so
# tests can serve the confirm page from 127.0.0.1.
GOOGLE_DRIVE_URL = "https://docs.google.com/uc?export=download"


def google_drive_url() -> str:
    return os.environ.get("OMZ_GOOGLE_DRIVE_URL") or GOOGLE_DRIVE_URL

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0  # between two reads, not for the whole body
USER_AGENT = "omz-tools-downloader"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(520, 530))
MAX_RETRY_AFTER = 120.0
READ_PIECE = 256 * 1024
_RE_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def make_session(pool_size: int) -> requests.Session:
    """One session for the whole run; its pool holds a connection per parallel job.

    trust_env stays on: HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE apply.
    """
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=max(4, pool_size),
                                            pool_maxsize=max(4, pool_size), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Bytes on disk must be the bytes the hash describes: no transparent decompression.
    session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    return session


@dataclass
class Opened:
    """A response whose body is ready to stream: ``offset`` is where its first byte belongs."""

    response: "requests.Response"
    offset: int
    validator: Optional[str]  # a strong ETag or Last-Modified, for If-Range next time
    total: Optional[int]  # the full size the server announced, if it did


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    import email.utils
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER))


def backoff_delay(attempt: int, retry_after: Optional[float] = None, base: float = 0.5,
                  cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it asks for longer."""
    delay = random.uniform(0, min(cap, base * (2 ** attempt)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def validator_of(response) -> Optional[str]:
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):  # weak ETags are not allowed in If-Range
        return etag
    return response.headers.get("Last-Modified")


def _status_error(response, url: str) -> Exception:
    from omz_tools.download.errors import PermanentError, TransientError

    status = response.status_code
    reason = f"HTTP {status} {response.reason or ''}".strip()
    response.close()
    if status in RETRY_STATUSES:
        return TransientError(f"the server answered {reason} for {url}",
                              retry_after=parse_retry_after(response.headers.get("Retry-After")))
    hint = {
        401: "the server wants credentials; this URL is not public",
        403: "access is forbidden; the file may have been made private or the link may have expired",
        404: "the file is not at this URL (moved or removed upstream); check the registry entry's URL",
        410: "the file was removed from this URL; check the registry entry's URL",
    }.get(status, "retrying cannot help with this status")
    return PermanentError(f"the server answered {reason} for {url}; {hint}")


def _get(session, url: str, headers: dict, params: Optional[dict] = None):
    from omz_tools.download.errors import PermanentError, TransientError

    try:
        return session.get(url, params=params, headers=headers, stream=True,
                           timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
    except requests.exceptions.Timeout as exc:
        raise TransientError(f"timed out talking to {url} ({describe_error(exc)})") from None
    except requests.exceptions.SSLError as exc:
        cause = describe_error(exc)
        hint = ("if you are behind a proxy with its own certificate, set REQUESTS_CA_BUNDLE to its CA "
                "bundle")
        if "CERTIFICATE_VERIFY_FAILED" in cause:  # retrying cannot change the certificate
            raise PermanentError(f"TLS error talking to {url} ({cause}); the server's certificate is not "
                                 f"trusted: {hint} (a file of PEM certificates)") from None
        raise TransientError(f"TLS error talking to {url} ({cause}); {hint}") from None
    except requests.exceptions.ConnectionError as exc:
        raise TransientError(f"cannot connect to {url} ({describe_error(exc)}); check the network and any "
                             "HTTP(S)_PROXY settings") from None
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"request to {url} failed ({describe_error(exc)})") from None


_RE_CONNECTION_PREFIX = re.compile(r"^\w*Connection\w*\(host=[^)]*\):\s*")
_RE_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def describe_error(exc: BaseException) -> str:
    """The root cause of a requests/urllib3/socket error in a few words ("Connection refused",
    "Failed to resolve 'host' (Name or service not known)", "Read timed out. (read timeout=60)"):
    requests wraps urllib3's MaxRetryError, which wraps the real error in its ``reason``."""
    for _ in range(8):  # a few levels of wrapping at most; never loop on a cycle
        reason = getattr(exc, "reason", None)
        inner = reason if isinstance(reason, BaseException) else (
            exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
        if inner is None or inner is exc:
            break
        exc = inner
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = _RE_CONNECTION_PREFIX.sub("", text)
    text = text.replace("Failed to establish a new connection: ", "")
    return _RE_ERRNO.sub("", text)[:200]


def _drive_confirmation(response, source: Source):
    """The URL and params of Google Drive's "can't scan this file for viruses" confirm page, if any."""
    for key, value in response.cookies.items():
        if key.startswith("download_warning"):
            return google_drive_url(), {"id": source.drive_id, "confirm": value}
    content_type = response.headers.get("Content-Type", "")
    if "text/html" not in content_type:
        return None
    text = response.content[:1 << 20].decode("utf-8", "replace")  # a page, not the file: small
    import html

    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', text, re.S)
    if form:
        params = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                 form.group(2)))
        return urljoin(response.url, html.unescape(form.group(1))), params
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", text)
    if token:
        return google_drive_url(), {"id": source.drive_id, "confirm": token.group(1)}
    return None


def open_source(session, source: Source, offset: int = 0, validator: Optional[str] = None) -> Opened:
    """Send the request (with Range/If-Range when continuing a .part) and check the status line.

    Raises TransientError / PermanentError / RestartError; the caller reads the body.
    """
    from omz_tools.download.errors import RestartError

    headers = {}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    if source.kind == "google_drive":
        response = _get(session, google_drive_url(), headers, {"id": source.drive_id})
        if response.status_code < 400:
            confirm = _drive_confirmation(response, source)
            if confirm is not None:
                response.close()
                response = _get(session, confirm[0], headers, confirm[1])
    else:
        response = _get(session, source.url, headers)

    if response.status_code == 416:
        response.close()
        raise RestartError(f"the server refused to continue at byte {offset} of {source.describe()} "
                           "(HTTP 416); starting over")
    if response.status_code >= 400:
        raise _status_error(response, source.describe())

    total = None
    if response.status_code == 206:
        match = _RE_CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or offset == 0 or int(match.group(1)) != offset:
            got = response.headers.get("Content-Range", "(none)")
            response.close()
            raise RestartError(f"asked {source.describe()} for bytes from {offset}, the server answered "
                               f"206 with Content-Range {got}; discarding the partial file and starting over")
        total = None if match.group(3) == "*" else int(match.group(3))
        start = offset
    elif response.status_code == 200:
        start = 0  # a full body: the server ignored Range, or If-Range saw a changed file
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    else:
        response.close()
        raise _status_error(response, source.describe())
    return Opened(response, start, validator_of(response), total)


# Errors a body read can raise, beside requests' own: the fast path reads http.client directly.
def body_errors() -> tuple:
    import http.client

    import urllib3.exceptions
    return (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError,
            requests.exceptions.RequestException)


def body_reader(response):
    """``read_into(buffer) -> n``: fills the buffer (less only at the end of the body, 0 at EOF).

    Reads straight from the http.client response under urllib3 into our reused buffers, which
    saves a fresh 1 MiB allocation and a copy per chunk; falls back to urllib3's read() when the
    body is content-encoded or the internals differ. Sizes are checked by the caller either way.
    """
    raw = response.raw
    fp = getattr(raw, "_fp", None)
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if fp is not None and hasattr(fp, "readinto") and not encoded:
        pending: list = []  # an error that came after some bytes: raised on the next call

        def read_into(buffer) -> int:
            if pending:
                raise pending.pop()
            view = memoryview(buffer)
            filled = 0
            while filled < len(view):
                try:
                    # Bounded pieces: if a timeout or reset interrupts a piece, http.client loses
                    # what that piece had received; the pieces before it are kept for resume.
                    got = fp.readinto(view[filled:filled + READ_PIECE])
                except body_errors() as exc:
                    if not filled:
                        raise
                    pending.append(exc)  # hand over what did arrive first: it is kept for resume
                    break
                if not got:
                    break
                filled += got
            return filled
        return read_into

    def read_into_fallback(buffer) -> int:
        data = raw.read(len(buffer), decode_content=True)
        buffer[:len(data)] = data
        return len(data)
    return read_into_fallback
