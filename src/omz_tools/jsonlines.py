"""JSON-lines progress events, shared by the downloader's and the converter's reporters."""

from __future__ import annotations

import json
import sys
import threading


class JsonLinesEmitter:
    """Writes one ``{"$type": ..., **fields}`` object per line, whole lines only across threads."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, type_: str, **fields) -> None:
        line = json.dumps({"$type": type_, **fields})
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
