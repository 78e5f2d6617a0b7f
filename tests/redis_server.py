"""A real ``redis-server`` for the Redis backend's tests: started on a unix socket, one per session.

The binary comes from the Debian package (``apt-get install redis-server``; ``.ci/run`` installs
it). Without it the tests that need it are skipped, saying so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

MISSING = "redis-server is not installed (apt-get install redis-server): the Redis backend tests need a real one"


@dataclass(frozen=True)
class RedisServer:
    url: str
    socket: Path
    process: subprocess.Popen[bytes]

    @staticmethod
    def prefix() -> str:
        """A fresh key prefix, so that tests sharing the server never see each other's keys."""
        return f"t{uuid.uuid4().hex[:12]}"


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(MISSING)
    return binary


@contextmanager
def running_redis(folder: Path, *, args: Sequence[str] = ()) -> Iterator[RedisServer]:
    """``redis-server`` on ``folder/redis.sock`` (no TCP port unless ``args`` ask for one), no persistence."""
    binary = redis_binary()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "redis.sock"
    command = [
        binary,
        "--port", "0",
        "--unixsocket", str(path),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(folder),
        *args,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"redis-server exited with {process.returncode}:\n{output}")
            if path.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as probe:
                        probe.connect(str(path))
                        probe.sendall(b"PING\r\n")
                        reply = probe.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start within 20 s")
            time.sleep(0.02)
        yield RedisServer(f"unix://{path}", path, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
