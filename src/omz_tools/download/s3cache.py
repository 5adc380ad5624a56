"""A shared cache tier on S3-compatible object storage (``--cache_dir s3://BUCKET/PREFIX``).

Objects use the folder cache's content-addressed layout under the prefix
(``PREFIX/1/<aa>/<rest>`` for sha384, ``PREFIX/sha256/<aa>/<rest>``), so a folder cache can be
published to a bucket as it is. A bucket is never trusted: it is one more *source* of a file,
tried before the mirrors and the origin, and its bytes go through the same receive/verify path
(``receive.BodyReceiver`` -> ``verify.StreamWriter``) as any HTTP body; a wrong size or hash is
reported and the next source is tried.

A file fetched elsewhere is uploaded only after it was verified at its final path, with one
conditional PutObject (``If-None-Match: *``; see :meth:`S3Tier.upload`), so a run killed
mid-upload leaves no object under the key and of two runners uploading the same file one stores
it; where conditional writes are missing, through a unique staging key
(``PREFIX/staging/<hash>.<random>``) and a server-side copy.

boto3 is imported only when an ``s3://`` cache is used (``pip install 'omz-model-tools[s3]'``).
Credentials, region and endpoint come from the standard AWS configuration (profiles,
``AWS_ENDPOINT_URL``, the credentials chain); nothing here reads, prints or logs a secret.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

from omz_tools.download.cache import AREAS
from omz_tools.download.errors import PermanentError, RestartError, TransientError
from omz_tools.download.sources import SourceConfigError
from omz_tools.download.tasks import Source
from omz_tools.errors import OmzError
from omz_tools.version import pip_install

SCHEME = "s3://"
LABEL = "cache-s3"
SINGLE_PUT_MAX = 4 << 30  # S3 takes up to 5 GiB in one PutObject
READ_CHUNK = 1 << 20  # what read_object asks the body for at a time
INSTALL = f"An s3:// cache needs boto3, which is not installed: {pip_install('s3')} (or pip install boto3)"


class S3CacheError(OmzError):
    """The S3 tier cannot be used at all (boto3 missing); one paragraph for the user."""


def is_s3(value) -> bool:
    return isinstance(value, str) and value.lower().startswith(SCHEME)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing slashes; "" for the bucket's root

    @classmethod
    def parse(cls, url: str, origin: str = "--cache_dir") -> "S3Location":
        rest = url.strip()[len(SCHEME):]
        bucket, _, prefix = rest.partition("/")
        if not bucket or any(c in bucket for c in "?#") or "?" in prefix or "#" in prefix:
            raise SourceConfigError(f"{origin}: expected s3://BUCKET or s3://BUCKET/PREFIX, found {url!r}.")
        return cls(bucket, prefix.strip("/"))

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def key(self, *parts: str) -> str:
        return "/".join(([self.prefix] if self.prefix else []) + list(parts))

    def object_key(self, algorithm: str, digest: str) -> str:
        digest = digest.lower()
        return self.key(AREAS[algorithm], digest[:2], digest[2:])


@dataclass(frozen=True)
class S3Source(Source):
    """A bucket's object for one file; ``url`` is s3://bucket/key, ``label`` names the tier."""

    key: str = ""
    tier: str = ""  # the tier's s3:// URL

    def describe(self) -> str:
        return self.url


def source_for(tier_url: str, model_file) -> Optional[S3Source]:
    """The bucket's source for a registry ModelFile (None for a hash the layout has no area for)."""
    checksum = model_file.checksum
    if checksum.algorithm not in AREAS:
        return None
    where = S3Location.parse(tier_url)
    key = where.object_key(checksum.algorithm, checksum.value)
    return S3Source(url=f"{SCHEME}{where.bucket}/{key}", kind="s3", label=f"{LABEL} {where.url}",
                    key=key, tier=where.url)


class ObjectAbsent(OmzError):
    """read_object: no object under the key (the GET answered NoSuchKey or 404)."""


class ReadBroke(OmzError):
    """read_object: the GET was answered but reading its body failed after ``got`` bytes (a broken
    connection, a timeout, a body cut short): no verdict on the object itself. ``cause`` is the error."""

    def __init__(self, got: int, cause: BaseException):
        super().__init__(f"reading the body broke after {got} bytes")
        self.got, self.cause = got, cause


@dataclass(frozen=True)
class ObjectRead:
    """What read_object read of an object."""

    size: int  # bytes read, hashed and given to the sink: never more than the expected size
    overran: bool  # the object holds more than the expected size (reading stopped there)
    digest: Optional[str]  # the hasher's hex digest of those bytes (None without a hasher)


def _boto3():
    try:
        import boto3
        import botocore.config
    except ImportError:
        raise S3CacheError(INSTALL + ".") from None
    return boto3, botocore.config


class _Response:
    """What receive.BodyReceiver reads: a urllib3 body (``raw``), its URL and headers."""

    def __init__(self, body, url: str, content_type: str):
        self._body = body
        self.raw = body._raw_stream  # botocore's StreamingBody over urllib3's HTTPResponse
        self.url = url
        self.headers = {"Content-Type": content_type}

    def close(self) -> None:
        self._body.close()


SERVER_BUSY = ("500", "502", "503", "504", "SlowDown", "InternalError", "ServiceUnavailable", "Throttling",
               "ThrottlingException", "RequestTimeout")


def retry_after(exc: BaseException) -> Optional[float]:
    """Seconds a refusing server asked us to wait: Retry-After, else x-amz-retry-after (ms)."""
    from omz_tools.download.transport import parse_retry_after
    headers = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
    seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is None and str(headers.get("x-amz-retry-after", "")).isdigit():
        seconds = parse_retry_after(str(int(headers["x-amz-retry-after"]) // 1000))
    return seconds


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__


class S3Tier:
    """One bucket (and prefix) for one run: its clients, and whether it is still usable.

    A tier that cannot be used (endpoint down, credentials refused, no such bucket) says why once,
    in ``down``, and is passed over for the rest of the run."""

    def __init__(self, url: str, *, limits, num_attempts: int = 3):
        boto3, config = _boto3()
        self.where = S3Location.parse(url)
        self.label = f"{LABEL} {self.where.url}"
        session = boto3.session.Session()  # the standard chain: env, profile, config files, roles
        timeouts = dict(connect_timeout=limits.connect_timeout, read_timeout=limits.read_timeout)
        # Metadata and uploads retry inside botocore (standard mode: 5xx, SlowDown, throttling and
        # connection errors, backoff rand*min(2**i, 20) s for throttling), --num_attempts in all;
        # a GET makes one attempt per call: the Fetcher retries (and resumes) it --num_attempts
        # times, so no attempt count is multiplied by another. AWS_MAX_ATTEMPTS/AWS_RETRY_MODE are
        # overridden by this explicit config.
        self.attempts = max(1, num_attempts)
        self.client = session.client("s3", config=config.Config(
            retries={"mode": "standard", "total_max_attempts": max(1, num_attempts)}, **timeouts))
        self.reader = session.client("s3", config=config.Config(
            retries={"mode": "standard", "total_max_attempts": 1}, **timeouts))
        self.down: Optional[str] = None
        self._checked = False
        self._lock = threading.Lock()
        self.said: set = set()  # what was already said to the user (each problem once)

    # -- is the bucket usable? --------------------------------------------------------------------

    def usable(self) -> bool:
        """Checks the bucket once per run (head_bucket); False once it is known unusable."""
        with self._lock:
            if not self._checked:
                self._checked = True
                try:
                    self.client.head_bucket(Bucket=self.where.bucket)
                except Exception as exc:  # noqa: BLE001 - botocore's errors, described below
                    self.down = self.describe_failure(exc, "reaching the bucket")
            return self.down is None

    def describe_failure(self, exc: BaseException, doing: str) -> str:
        """One paragraph for a botocore error; never includes a credential."""
        code = error_code(exc)
        where = f"The S3 cache {self.where.url}"
        advice = ("files are fetched from the next source (mirrors, then the origin) in this run."
                  if doing != "uploading" else "the file was not stored there.")
        if code in ("404", "NoSuchBucket"):
            return f"{where} cannot be used: the bucket {self.where.bucket!r} does not exist; {advice}"
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden",
                    "InvalidToken", "ExpiredToken"):
            return (f"{where} refused our credentials or their permissions ({code}) while {doing}; {advice} "
                    "Check the standard AWS configuration (AWS_PROFILE, AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, the instance role) and the bucket policy.")
        if code in ("NoCredentialsError", "PartialCredentialsError"):
            return (f"{where} cannot be used: no AWS credentials were found (AWS_PROFILE, "
                    f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or a role); {advice}")
        from omz_tools.download.transport import describe_error
        endpoint = getattr(self.client.meta, "endpoint_url", "")
        if code in SERVER_BUSY:  # botocore already retried it (see __init__)
            return (f"{where} at {endpoint} kept answering {code} (throttled or failing) while {doing}, "
                    f"after {self.attempts} attempts; {advice} Run again later, or raise --num_attempts.")
        if getattr(exc, "response", None):  # the server answered: a region, redirect or request problem
            text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())[:200]
            return (f"{where} at {endpoint} answered {code}{f' ({text})' if text else ''} while {doing}; "
                    f"{advice} Check the bucket's region (AWS_DEFAULT_REGION or the profile's region) "
                    "and AWS_ENDPOINT_URL.")
        return (f"{where} could not be reached at {endpoint} while {doing} "
                f"({describe_error(exc)}); {advice} Check AWS_ENDPOINT_URL and the network.")

    def holds(self, algorithm: str, digest: str, size: int) -> Optional[bool]:
        """True if an object is at the hash's key (its bytes are verified when read), False if
        not, None if the tier became unusable (``down`` says why)."""
        if not self.usable():
            return None
        try:
            self.client.head_object(Bucket=self.where.bucket, Key=self.where.object_key(algorithm, digest))
            return True
        except Exception as exc:  # noqa: BLE001
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            with self._lock:
                self.down = self.down or self.describe_failure(exc, "looking up an object")
            return None

    # -- reading ----------------------------------------------------------------------------------

    def open(self, source: S3Source, offset: int = 0, validator: Optional[str] = None):
        """A transport.Opened for the object (Range from ``offset`` if it still has ``validator``)."""
        from omz_tools.download.transport import Opened

        args = {"Bucket": self.where.bucket, "Key": source.key}
        if offset:
            args["Range"] = f"bytes={offset}-"
            if validator:
                args["IfMatch"] = validator
        try:
            answer = self.reader.get_object(**args)
        except Exception as exc:  # noqa: BLE001
            raise self._get_error(exc, source, offset) from None
        total = answer.get("ContentLength")
        content_range = answer.get("ContentRange") or ""
        start = 0
        if content_range:  # "bytes START-END/TOTAL"
            span, _, whole = content_range.partition(" ")[2].partition("/")
            start = int(span.split("-")[0])
            total = int(whole) if whole.isdigit() else None
        response = _Response(answer["Body"], source.url, answer.get("ContentType", ""))
        return Opened(response=response, offset=start, validator=answer.get("ETag"), total=total)

    def read_object(self, key: str, expected_size: int, hasher=None,
                    sink: Optional[Callable[[bytes], None]] = None, *, retry: bool = False) -> ObjectRead:
        """GET the object under ``key`` and stream its body, 1 MiB at a time, into ``hasher``
        (``update``) and ``sink``, stopping at the first chunk that would take it past
        ``expected_size``: an object longer than the caller expects is already wrong, so a damaged
        object of any length costs at most one chunk more than a good one. The body is closed
        whatever happens. One loop for the callers that check an object against a size and hash
        outside the Fetcher (``omz-cache verify``, the IR cache), which differ only in what they
        do with each outcome.

        ``retry``: the GET goes through ``client`` (botocore retries it, --num_attempts in all),
        else through ``reader`` (one attempt, for a caller that falls back on its own). Raises
        ObjectAbsent for a missing key, ReadBroke when reading the answered body fails, and
        botocore's error for any other refused or unreachable GET; an error of the sink or the
        hasher propagates as it is."""
        client = self.client if retry else self.reader
        try:
            answer = client.get_object(Bucket=self.where.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore's errors: the caller describes them
            if error_code(exc) in ("NoSuchKey", "404"):
                raise ObjectAbsent(key) from exc
            raise
        body = answer["Body"]
        got, overran = 0, False
        try:
            chunks = body.iter_chunks(READ_CHUNK)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - a broken read, not a verdict on the object
                    raise ReadBroke(got, exc) from exc
                if got + len(chunk) > expected_size:
                    overran = True
                    break
                if hasher is not None:
                    hasher.update(chunk)
                if sink is not None:
                    sink(chunk)
                got += len(chunk)
        finally:
            body.close()
        return ObjectRead(got, overran, hasher.hexdigest() if hasher is not None else None)

    def _get_error(self, exc: BaseException, source: S3Source, offset: int):
        code = error_code(exc)
        if code in ("NoSuchKey", "404"):
            return PermanentError(f"the object {source.url} is gone (deleted since it was looked up)",
                                  brief="object gone")
        if code in ("PreconditionFailed", "412") and offset:
            return RestartError(f"the object {source.url} changed since the partial file was kept; "
                                "starting over", brief="object changed; starting over")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return PermanentError(self.describe_failure(exc, "reading an object"), brief=f"S3 {code}")
        if code in SERVER_BUSY:  # the Fetcher retries (this client makes one attempt), after Retry-After
            return TransientError(f"the S3 cache answered {code} for {source.url}", retry_after=retry_after(exc),
                                  brief=f"S3 {code} ({self.label})", network=True)
        from omz_tools.download.transport import describe_error
        return TransientError(f"reading {source.url} failed ({describe_error(exc)})",
                              brief=f"{describe_error(exc)} ({self.label})", network=True)

    # -- writing ----------------------------------------------------------------------------------

    def publish(self, path, algorithm: str, digest: str, *, replace: bool = False) -> Optional[str]:
        """Upload a verified file to its key unless an object is there already (``replace``: even
        then). None when done or not needed, else one paragraph saying why it was not stored."""
        if not self.usable():
            return None
        if not replace and self.holds(algorithm, digest, 0):
            return None
        try:
            self.upload(path, algorithm, digest, replace=replace)
        except Exception as exc:  # noqa: BLE001
            return (f"Could not store {path.name} in {self.where.url}: "
                    f"{self.describe_failure(exc, 'uploading')} The downloaded file itself is fine.")
        return None

    def upload(self, path, algorithm: str, digest: str, *, replace: bool = False) -> None:
        """One PutObject with its Content-Length, conditional on no object being there
        (``If-None-Match: *``) unless ``replace``: S3 stores a PUT whole or not at all, so a runner
        killed mid-upload leaves nothing under the key, and of two runners the second is refused
        (412) and has nothing to do. Where conditional writes are not implemented, or for a file
        too big for one PUT, the file goes to a unique staging key and is copied server-side.
        Raises botocore's errors."""
        bucket, key = self.where.bucket, self.where.object_key(algorithm, digest)
        size = os.path.getsize(path)
        if size <= SINGLE_PUT_MAX:
            condition = {} if replace else {"IfNoneMatch": "*"}
            try:
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentLength=size, **condition)
                return
            except Exception as exc:  # noqa: BLE001
                code = error_code(exc)
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return  # another runner published it meanwhile: the same verified bytes
                if code not in ("NotImplemented", "501"):
                    raise
        staging = self.where.key("staging", f"{digest[:16]}.{uuid.uuid4().hex}")
        self.client.upload_file(str(path), bucket, staging)
        try:
            self.client.copy({"Bucket": bucket, "Key": staging}, bucket, key)
        finally:
            self.client.delete_object(Bucket=bucket, Key=staging)
