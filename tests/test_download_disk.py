"""The local side of a download: writing the .part on a real, too small filesystem (a 2 MiB tmpfs)
is a clear local error that blames the disk, not the network, and keeps what was written; big files
are flushed while they stream; a read-only output folder is refused before any download (and is
fine for a rerun that only reads); a folder that cannot be created fails its model clearly."""

from __future__ import annotations

import hashlib

import pytest

from conftest import remount
from helpers_http import one_model, run_downloader, server  # noqa: F401
from omz_tools.download.errors import LocalWriteError
from omz_tools.download.verify import StreamWriter

MiB = 1 << 20


def test_disk_full_is_a_local_write_error(small_tmpfs):
    part = small_tmpfs / "big.bin.part"
    writer = StreamWriter(part, 0, hashlib.sha256())
    with pytest.raises(LocalWriteError) as caught:
        for _ in range(4):
            buffer = writer.buffer()
            buffer[:] = b"\1" * len(buffer)
            writer.put_buffer(buffer, len(buffer))
        writer.finish()
    writer.abort()
    message = str(caught.value)
    assert str(part) in message and "No space left on device" in message
    assert "free some space" in message and "Kept what was written" in message
    assert 0 < part.stat().st_size <= 2 * MiB


def test_stream_writer_hashes_and_writes_everything(tmp_path):
    import os
    data = os.urandom(3 * MiB + 5)
    part = tmp_path / "x.part"
    part.write_bytes(data[:100])  # a kept prefix
    writer = StreamWriter(part, 100, hashlib.sha256(data[:100]))
    for start in range(100, len(data), MiB):
        chunk = data[start:start + MiB]
        buffer = writer.buffer()
        buffer[:len(chunk)] = chunk
        writer.put_buffer(buffer, len(chunk))
    assert writer.finish() == hashlib.sha256(data).hexdigest()
    assert part.read_bytes() == data


def _fill(writer, data: bytes, start: int, end: int) -> None:
    for offset in range(start, end, MiB):
        chunk = data[offset:min(offset + MiB, end)]
        buffer = writer.buffer()
        buffer[:len(chunk)] = chunk
        writer.put_buffer(buffer, len(chunk))


def test_big_file_is_flushed_to_disk_while_it_streams(tmp_path, monkeypatch):
    """Every SYNC_EVERY bytes a flush runs on the writer's sync thread, before the data ends,
    so the final fsync has little left to do."""
    import os
    import threading

    from omz_tools.download import verify

    real_flush = verify._flush
    calls = []
    flushed = threading.Event()

    def recording_flush(fd):
        calls.append((threading.current_thread().name, os.fstat(fd).st_size))
        real_flush(fd)
        flushed.set()

    monkeypatch.setattr(verify, "_flush", recording_flush)
    data = os.urandom(2 * verify.StreamWriter.SYNC_EVERY + 3 * MiB)
    part = tmp_path / "x.part"
    writer = StreamWriter(part, 0, hashlib.sha384())
    first = verify.StreamWriter.SYNC_EVERY + MiB
    _fill(writer, data, 0, first)
    assert flushed.wait(120), "no flush was requested after SYNC_EVERY bytes"  # a hang guard only
    _fill(writer, data, first, len(data))
    assert writer.finish() == hashlib.sha384(data).hexdigest()
    assert part.read_bytes() == data
    assert calls and all(name == "sync x.part" for name, _ in calls)
    assert verify.StreamWriter.SYNC_EVERY <= calls[0][1] <= first < len(data)


def test_failed_flush_is_a_local_write_error(tmp_path, monkeypatch):
    import errno
    import os

    from omz_tools.download import verify

    def failing_flush(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(verify, "_flush", failing_flush)
    data = os.urandom(verify.StreamWriter.SYNC_EVERY + 2 * MiB)
    part = tmp_path / "x.part"
    writer = StreamWriter(part, 0, hashlib.sha256())
    with pytest.raises(LocalWriteError) as caught:
        _fill(writer, data, 0, len(data))
        writer.finish()
    writer.abort()
    message = str(caught.value)
    assert str(part) in message and os.strerror(errno.EIO) in message
    assert "Kept what was written" in message


def test_read_only_output_folder_is_refused_before_any_download_and_fine_for_a_rerun(small_tmpfs, tmp_path,
                                                                                      server):
    reg, _ = one_model(tmp_path, server, {"w.bin": b"\1" * 1000})
    remount(small_tmpfs, "ro")
    try:
        proc = run_downloader("--registry", reg, "--name", "m1", "-o", small_tmpfs / "out")
        assert proc.returncode == 1 and not server.log
        assert proc.stderr.strip() == (
            f"Cannot write the downloads to {small_tmpfs / 'out'} (it does not exist yet, and it would be "
            f"created in {small_tmpfs}): it is on a read-only filesystem. Nothing was downloaded. Choose a "
            "writable folder with --output_dir, or fix its permissions or mount.")
        remount(small_tmpfs, "rw")
        assert run_downloader("--registry", reg, "--name", "m1", "-o", small_tmpfs / "out").returncode == 0
        remount(small_tmpfs, "ro")
        # Everything present and recorded: a read-only folder only needs reading.
        rerun = run_downloader("--registry", reg, "--name", "m1", "-o", small_tmpfs / "out")
        assert rerun.returncode == 0, rerun.stderr
        assert len(server.log) == 1
    finally:
        remount(small_tmpfs, "rw")


def test_a_file_where_the_model_folder_should_be_fails_that_model_with_a_clear_message(tmp_path, server):
    reg, out = one_model(tmp_path, server, {"w.bin": b"\1" * 1000})
    (out / "public").mkdir(parents=True)
    (out / "public" / "m1").write_bytes(b"not a folder")
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert proc.returncode == 1 and not server.log
    assert f"Error: m1/w.bin: cannot write {out / 'public' / 'm1'}: File exists. Nothing was put at " \
           f"{out / 'public' / 'm1' / 'w.bin'}; check the permissions" in proc.stderr
    assert "Traceback" not in proc.stderr and "OSError" not in proc.stderr
