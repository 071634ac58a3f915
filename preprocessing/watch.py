"""A file as a long-running process sees it: parsed again when it changes, looked at no more often than every
``refresh_s`` seconds, so a request path pays at most one ``stat`` per interval. The tombstone list and the
model repository's serving state reach every facade process this way, without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class FileWatch(Generic[T]):
    """``value()``: ``read(path)`` as of the file's last change, or ``missing`` while there is no file.

    Examples
    --------
    >>> path = Path("/tmp/recstack-watch-doctest.txt")
    >>> path.unlink(missing_ok=True)
    >>> watch = FileWatch(path, lambda p: p.read_text(), missing="", refresh_s=0.0)
    >>> watch.value()
    ''
    >>> _ = path.write_text("v1")
    >>> watch.value()
    'v1'
    """

    def __init__(self, path: str | Path | None, read: Callable[[Path], T], missing: T, refresh_s: float = 2.0):
        self.path = Path(path) if path is not None else None
        self.read, self.missing, self.refresh_s = read, missing, refresh_s
        self._value, self._seen, self._checked_at = missing, None, float("-inf")

    def value(self) -> T:
        if self.path is None or time.monotonic() - self._checked_at <= self.refresh_s:
            return self._value
        self._checked_at = time.monotonic()
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._value, self._seen = self.missing, None
            return self._value
        # Files are replaced atomically (a new inode), or appended to (a new size): either changes the key.
        seen = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if seen != self._seen:
            self._value, self._seen = self.read(self.path), seen
        return self._value
