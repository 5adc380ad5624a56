"""Writing the .part on a real, too small filesystem (a 2 MiB tmpfs): a clear local error that
blames the disk, not the network, and keeps what was written."""

from __future__ import annotations

import hashlib

import pytest

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
