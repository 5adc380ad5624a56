"""Receive one response body into ``<file>.part``: refuse what cannot be the file (a wrong
announced size, a web page, a body longer than the registry says) before keeping it, hash and
write it as it streams (``verify.StreamWriter``), end an attempt that stalls, and verify the whole."""

from __future__ import annotations

import time

from omz_tools.download import records
from omz_tools.download.errors import Interrupted, PermanentError, RestartError, TransientError, VerificationError
from omz_tools.download.verify import StreamWriter, looks_like_html, mismatch_message
from omz_tools.localstate import hash_file

PROGRESS_INTERVAL = 0.1  # seconds: at most ~10 progress events per second per file


class RateWatch:
    """Ends an attempt whose body arrives slower than ``min_rate`` bytes/s over ``window`` seconds."""

    def __init__(self, min_rate: float, window: float):
        self.min_rate, self.window = min_rate, window
        self.mark_time = time.monotonic()
        self.mark_bytes = 0

    def check(self, received: int, url: str) -> None:
        if self.min_rate <= 0:
            return
        now = time.monotonic()
        if now - self.mark_time < self.window:
            return
        got = received - self.mark_bytes
        if got < self.min_rate * (now - self.mark_time):
            from omz_tools.wording import human_size
            rate = f"{human_size(got)} in {now - self.mark_time:.0f} s"
            raise TransientError(
                f"the body from {url} arrives too slowly ({rate}, below the minimum of "
                f"{human_size(int(self.min_rate))}/s; --min_rate and --stall_window set it)",
                brief=f"too slow: {rate}", network=True)
        self.mark_time, self.mark_bytes = now, received


class BodyReceiver:
    """One attempt's body. ``receive()`` returns the verified digest of the whole ``.part`` or
    raises a DownloadError saying what went wrong (and removes a .part not worth keeping)."""

    def __init__(self, task, source, opened, *, reporter, cancel, limits):
        self.task, self.source, self.opened = task, source, opened
        self.reporter, self.cancel, self.limits = reporter, cancel, limits
        self.target, self.part = task.target, records.part_path(task.target)
        self.checksum, self.size = task.model_file.checksum, task.model_file.size
        self.url = opened.response.url or source.url
        self.content_type = opened.response.headers.get("Content-Type", "")
        self.start = opened.offset  # where the server continues: 0 when it sends the whole file
        self.received = 0

    def _mismatch(self, **kwargs) -> str:
        return mismatch_message(target=self.target, url=self.url, expected_size=self.size,
                                algorithm=self.checksum.algorithm, expected_hash=self.checksum.value, **kwargs)

    def check_announced(self, offset: int) -> None:
        """Refuse a body whose announced size is not the registry's, before reading it."""
        from omz_tools.download import transport

        opened, size = self.opened, self.size
        if offset and self.start == 0:
            self.reporter.note(self.task.model_name, self.task.name,
                               f"the server sent the whole file instead of continuing at byte {offset} "
                               "(it ignores Range, or the file changed); starting over")
        if opened.total is None or opened.total == size:
            return
        if self.start > 0:
            raise RestartError(f"the server says the file at {self.url} is now {opened.total} bytes, not "
                               f"{size}; discarding the partial file and starting over",
                               brief=f"the file is now {opened.total} bytes; starting over")
        # Announced the wrong size: look at the start of the body to say what it is, keep nothing.
        head = opened.prefix or transport.read_prefix(opened.response, 64 * 1024)
        records.remove_part(self.target)
        raise PermanentError(self._mismatch(
            actual_size=opened.total, actual_hash=None, action="Nothing was written to the output folder.",
            html=looks_like_html(head, self.content_type),
            cause=("The server announced a different size (Content-Length) than the registry "
                   "entry, so it is serving something else: the file changed upstream or the URL "
                   "now points elsewhere; check the URL and the registry entry.")),
            brief=f"the server announced {opened.total} bytes, expected {size}")

    def receive(self) -> str:
        """Stream the body into the .part (after the kept prefix) and return its verified digest."""
        checksum = self.checksum
        records.write_part_info(self.target, url=self.source.url, validator=self.opened.validator,
                                algorithm=checksum.algorithm, digest=checksum.value, size=self.size)
        hasher = checksum.new_hasher()
        if self.start:
            hash_file(self.part, checksum.algorithm, limit=self.start, hasher=hasher)  # the kept prefix
        self.reporter.file_transfer(self.task.model_name, self.task.name, self.size, self.start, self.url)
        writer = StreamWriter(self.part, self.start, hasher)
        self._stream(writer)
        digest = writer.finish()
        self.reporter.file_progress(self.task.model_name, self.task.name, writer.size, self.size)
        self._verify(writer.size, digest)
        return digest

    def _stream(self, writer: StreamWriter) -> None:
        from omz_tools.download import transport

        task, size = self.task, self.size
        read_into = transport.body_reader(self.opened.response, self.opened.prefix)
        last_report = 0.0
        watch = RateWatch(self.limits.min_rate, self.limits.stall_window)
        try:
            while True:
                if self.cancel.is_set():
                    raise Interrupted()
                buffer = writer.buffer()
                length = read_into(buffer)
                if not length:
                    writer.give_back(buffer)
                    return
                self._refuse_chunk(writer, buffer, length)
                writer.put_buffer(buffer, length)
                self.received += length
                task.received += length
                now = time.monotonic()
                if now - last_report >= PROGRESS_INTERVAL:
                    last_report = now
                    self.reporter.file_progress(task.model_name, task.name, writer.size, size)
                watch.check(self.received, self.url)
        except transport.body_errors() as exc:
            writer.abort()
            raise self._broken(writer, exc) from None
        except BaseException:
            writer.abort()
            raise

    def _refuse_chunk(self, writer: StreamWriter, buffer, length: int) -> None:
        """A web page where the file should start, or more bytes than the file has: stop, keep nothing."""
        size = self.size
        if not self.received and self.start == 0 and looks_like_html(bytes(buffer[:1024]), self.content_type):
            writer.abort()
            records.remove_part(self.target)
            raise PermanentError(self._mismatch(
                actual_size=self.opened.total or length, actual_hash=None,
                action="Nothing was written to the output folder.", html=True),
                brief="an HTML page instead of the file")
        if writer.size + length > size:
            writer.abort()
            records.remove_part(self.target)
            raise PermanentError(self._mismatch(
                actual_size=writer.size + length, actual_hash=None,
                action="Stopped reading and deleted the partial file for safety.",
                cause=(f"The body is longer than the registry's {size} bytes (at least "
                       f"{writer.size + length} bytes arrived), so it is not the file the "
                       "registry describes; check the URL and the registry entry.")),
                brief=f"the body is longer than {size} bytes")

    def _broken(self, writer: StreamWriter, exc: BaseException) -> BaseException:
        from omz_tools.download import transport

        if writer.size == 0:
            records.remove_part(self.target)
        if self.cancel.is_set():
            return Interrupted()
        cause = transport.describe_error(exc)
        if isinstance(exc, TimeoutError) or "timed out" in cause:
            cause = f"no data for {self.limits.read_timeout:g} s; --timeout sets it"
        return TransientError(
            f"the connection to {self.url} broke after {writer.size} of {self.size} bytes ({cause})",
            brief=f"connection broke after {writer.size} of {self.size} bytes ({cause})", network=True)

    def _verify(self, written: int, digest: str) -> None:
        size, checksum = self.size, self.checksum
        if written < size:
            raise TransientError(f"the body from {self.url} ended after {written} of {size} bytes",
                                 brief=f"body ended after {written} of {size} bytes", network=True)
        if digest != checksum.value:
            with open(self.part, "rb") as stream:
                head = stream.read(1024)  # to say whether it was a web page
            records.remove_part(self.target)
            raise VerificationError(self._mismatch(
                actual_size=written, actual_hash=digest,
                action=f"Deleted the downloaded data for safety; nothing was written at {self.target}.",
                resumed=self.start > 0, html=looks_like_html(head, self.content_type)),
                resumed=self.start > 0, brief=f"{checksum.algorithm} mismatch")
