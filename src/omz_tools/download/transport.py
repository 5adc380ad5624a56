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
PAGE_LIMIT = 64 * 1024  # at most this much of a page we parse (Google Drive's confirm page) is read
RETURN_AFTER = 0.25  # seconds: a read hands over what it has by then, so slow bodies can be watched
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
    prefix: bytes = b""  # the body's first bytes, already read (a page looked at for a confirm link)


_RE_SECONDS = re.compile(r"[0-9]{1,12}")


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped; None
    when absent or unparsable (the normal backoff applies then)."""
    if not value:
        return None
    value = value.strip()
    if _RE_SECONDS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER)
    import email.utils
    try:
        when = email.utils.parsedate_to_datetime(value)
        seconds = when.timestamp() - time.time()
    except Exception:  # noqa: BLE001 - a server's odd header must never become our error
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


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
    reason = f"HTTP {status} {response.reason or ''}".strip()[:80]
    response.close()
    if status in RETRY_STATUSES:
        return TransientError(f"the server answered {reason} for {url}", brief=reason,
                              retry_after=parse_retry_after(response.headers.get("Retry-After")))
    hint = {
        401: "the server wants credentials; this URL is not public",
        403: "access is forbidden; the file may have been made private or the link may have expired",
        404: "the file is not at this URL (moved or removed upstream); check the registry entry's URL",
        410: "the file was removed from this URL; check the registry entry's URL",
    }.get(status, "retrying cannot help with this status")
    return PermanentError(f"the server answered {reason} for {url}; {hint}", brief=reason)


def _get(session, url: str, headers: dict, params: Optional[dict] = None,
         timeouts: tuple = (CONNECT_TIMEOUT, READ_TIMEOUT)):
    from omz_tools.download.errors import PermanentError, TransientError

    try:
        return session.get(url, params=params, headers=headers, stream=True, timeout=timeouts)
    except requests.exceptions.Timeout as exc:
        cause = describe_error(exc)
        raise TransientError(f"timed out talking to {url} ({cause}; --timeout sets the limits)",
                             brief=cause, network=True) from None
    except requests.exceptions.SSLError as exc:
        cause = describe_error(exc)
        hint = ("if you are behind a proxy with its own certificate, set REQUESTS_CA_BUNDLE to its CA "
                "bundle")
        if "CERTIFICATE_VERIFY_FAILED" in cause:  # retrying cannot change the certificate
            raise PermanentError(f"TLS error talking to {url} ({cause}); the server's certificate is not "
                                 f"trusted: {hint} (a file of PEM certificates)",
                                 brief="TLS certificate not trusted") from None
        raise TransientError(f"TLS error talking to {url} ({cause}); {hint}", brief=cause,
                             network=True) from None
    except requests.exceptions.ConnectionError as exc:
        cause = describe_error(exc)
        raise TransientError(f"cannot connect to {url} ({cause})", brief=cause, network=True) from None
    except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema) as exc:
        # A redirect to file:, ftp:, javascript: ... (or a broken Location): not transient.
        cause = describe_error(exc)
        raise PermanentError(f"{url} led to a URL that cannot be fetched over HTTP(S) ({cause}); "
                             "only http:// and https:// are followed, so retrying cannot help; check "
                             "the URL", brief="redirected to a non-HTTP(S) URL") from None
    except requests.exceptions.TooManyRedirects as exc:
        raise PermanentError(f"{url} redirects too many times ({describe_error(exc)}); check the URL",
                             brief="too many redirects") from None
    except requests.exceptions.RequestException as exc:
        cause = describe_error(exc)
        raise TransientError(f"request to {url} failed ({cause})", brief=cause, network=True) from None


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


def read_prefix(response, limit: int) -> bytes:
    """At most ``limit`` bytes of a body (an endless page must not fill the memory); the rest is
    never read (the caller closes the response)."""
    data = b""
    try:
        while len(data) < limit:
            piece = response.raw.read(limit - len(data), decode_content=True)
            if not piece:
                break
            data += piece
    except body_errors():
        pass  # a page cut short is parsed as far as it came
    return data[:limit]


def _drive_confirmation(response, source: Source, seen: list):
    """The URL and params of Google Drive's "can't scan this file for viruses" confirm page, if any.
    Reads at most PAGE_LIMIT bytes of a page, appended to ``seen`` (they are the body's start)."""
    for key, value in response.cookies.items():
        if key.startswith("download_warning"):
            return google_drive_url(), {"id": source.drive_id, "confirm": value}
    content_type = response.headers.get("Content-Type", "")
    if "text/html" not in content_type:
        return None
    seen.append(read_prefix(response, PAGE_LIMIT))
    text = seen[-1].decode("utf-8", "replace")
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


def open_source(session, source: Source, offset: int = 0, validator: Optional[str] = None,
                timeouts: tuple = (CONNECT_TIMEOUT, READ_TIMEOUT)) -> Opened:
    """Send the request (with Range/If-Range when continuing a .part) and check the status line.

    Raises TransientError / PermanentError / RestartError; the caller reads the body.
    """
    from omz_tools.download.errors import RestartError

    headers = {}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    seen: list = []
    if source.kind == "google_drive":
        response = _get(session, google_drive_url(), headers, {"id": source.drive_id}, timeouts)
        if response.status_code < 400:
            confirm = _drive_confirmation(response, source, seen)
            if confirm is not None:
                response.close()
                seen = []
                response = _get(session, confirm[0], headers, confirm[1], timeouts)
    else:
        response = _get(session, source.url, headers, timeouts=timeouts)

    if response.status_code == 416:
        response.close()
        raise RestartError(f"the server refused to continue at byte {offset} of {source.describe()} "
                           "(HTTP 416); starting over", brief="HTTP 416: cannot resume; starting over")
    if response.status_code >= 400:
        raise _status_error(response, source.describe())

    total = None
    if response.status_code == 206:
        match = _RE_CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        total = None if not match or match.group(3) == "*" else int(match.group(3))
        # From byte 0, a 206 covering the whole file (bytes 0-(N-1)/N) is the whole file.
        whole = (match is not None and offset == 0 and int(match.group(1)) == 0 and total is not None
                 and int(match.group(2)) == total - 1)
        if not whole and (not match or offset == 0 or int(match.group(1)) != offset):
            got = response.headers.get("Content-Range", "(none)")[:100]
            response.close()
            raise RestartError(f"asked {source.describe()} for bytes from {offset}, the server answered "
                               f"206 with Content-Range {got}; discarding the partial file and starting over",
                               brief=f"unexpected Content-Range {got}; starting over")
        start = offset
    elif response.status_code == 200:
        start = 0  # a full body: the server ignored Range, or If-Range saw a changed file
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    else:
        response.close()
        raise _status_error(response, source.describe())
    return Opened(response, start, validator_of(response), total, b"".join(seen))


# Errors a body read can raise, beside requests' own: the fast path reads http.client directly.
def body_errors() -> tuple:
    import http.client

    import urllib3.exceptions
    return (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError,
            requests.exceptions.RequestException)


def _fallback_reader(raw, prefix: bytes):
    """urllib3's raw read, undecoded, after ``prefix``."""
    early = [prefix] if prefix else []

    def read_into_fallback(buffer) -> int:
        data = early.pop() if early else raw.read(len(buffer), decode_content=False)
        buffer[:len(data)] = data
        return len(data)
    return read_into_fallback


def _one_system_call(fp, inner):
    """``read_some(view) -> n``: at most one read from the socket reader under http.client's
    response ``fp``, keeping its count of the bytes left (0 at the end of the body)."""
    def read_some(view) -> int:
        if fp.fp is None:  # closed: the body is over
            return 0
        if fp.chunked:  # http.client decodes the chunk framing (not content encodings)
            data = fp.read1(len(view))
            view[:len(data)] = data
            return len(data)
        want = len(view) if fp.length is None else min(len(view), fp.length)
        if not want:
            fp.read(1)  # at the announced end: lets http.client release the connection for reuse
            return 0
        got = inner.readinto1(view[:want])
        if fp.length is not None:
            fp.length -= got
        return got
    return read_some


def body_reader(response, prefix: bytes = b""):
    """``read_into(buffer) -> n``: fills the buffer with the body's bytes as sent (no content
    decoding: the bytes stored are the bytes the registry's hash describes, even when a server
    labels a .tar.gz with ``Content-Encoding: gzip``). Returns 0 at the end of the body, and
    returns early (fewer bytes) after ``RETURN_AFTER`` seconds, so a slow body can be watched.

    Reads with at most one system call at a time (``readinto1``) straight from the socket's
    buffered reader under http.client into our reused buffers: a connection reset or timeout
    then loses nothing that arrived (it is handed over first, and the error is raised on the
    next call), and no fresh 1 MiB is allocated per chunk. Falls back to urllib3's raw read
    when the internals differ.
    """
    raw = response.raw
    fp = getattr(raw, "_fp", None)  # http.client.HTTPResponse
    inner = getattr(fp, "fp", None)  # its socket reader
    if fp is None or inner is None or not hasattr(inner, "readinto1") or not hasattr(fp, "read1"):
        return _fallback_reader(raw, prefix)
    read_some = _one_system_call(fp, inner)
    pending: list = []  # an error that came after some bytes: raised on the next call
    first = [prefix] if prefix else []  # bytes read before (a page looked at): they come first

    def read_into(buffer) -> int:
        if first:
            data = first.pop()
            buffer[:len(data)] = data
            return len(data)
        if pending:
            raise pending.pop()
        view = memoryview(buffer)
        filled = 0
        began = time.monotonic()
        while filled < len(view):
            try:
                got = read_some(view[filled:filled + READ_PIECE])
            except body_errors() as exc:
                if not filled:
                    raise
                pending.append(exc)  # hand over what did arrive first: it is kept for resume
                break
            if not got:
                break
            filled += got
            if time.monotonic() - began >= RETURN_AFTER:
                break
        return filled
    return read_into
