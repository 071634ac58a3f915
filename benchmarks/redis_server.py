"""A ``redis-server`` (Debian's package) for benchmarks and tests: on a loopback port, persisting to an append-only
file with a chosen fsync policy, and stopped, killed or restarted on the same port and data.

Examples
--------
>>> with RedisServer(Path("/tmp/redis-always"), fsync="always") as server:  # doctest: +SKIP
...     redis.Redis.from_url(server.url).set("k", "v")
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

FSYNC_POLICIES = ("always", "everysec")


class RedisServer:
    """``fsync`` None runs without the append-only file (nothing survives a restart)."""

    def __init__(self, folder: Path, fsync: str | None = "everysec", port: int = 0):
        from recstack.ensemble.server import free_port

        if fsync is not None and fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES} or None; got {fsync!r}")
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise FileNotFoundError("redis-server is not installed (make system-deps installs Debian's package)")
        self.folder, self.fsync = Path(folder), fsync
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        import redis

        persistence = ["--appendonly", "no"] if self.fsync is None else ["--appendonly", "yes",
                                                                         "--appendfsync", self.fsync]
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         *persistence, "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return self
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.kill()
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last fsync; what survives is what the policy had written."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
