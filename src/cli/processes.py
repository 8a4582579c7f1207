"""Start allim's services as child processes on free loopback ports, wait until they answer,
and stop them: what `allim demo`, the benchmarks and the chaos runs share."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def allim_executable() -> str:
    """The `allim` script beside the running interpreter (the project's venv)."""
    candidate = Path(sys.executable).with_name("allim")
    return str(candidate) if candidate.exists() else "allim"


class ServiceError(RuntimeError):
    """A service did not start, or exited when it should not have."""


@dataclass
class Service:
    """One `allim <args>` child process and the URL that tells when it is ready."""

    name: str
    args: Sequence[str]
    env: Mapping[str, str]
    ready_url: str | None
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        """Spawn the process (its own process group, output to its log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [allim_executable(), *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        """The process id; the service must have been started."""
        if self.process is None:
            raise ServiceError(f"Service '{self.name}' has not been started.")
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until `ready_url` answers 200; raise `ServiceError` if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceError(
                    f"Service '{self.name}' exited with {self.process and self.process.returncode}"
                    f" during start-up; its log is {self.log_path}:\n{self.tail()}"
                )
            if self.ready_url is None:
                return
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise ServiceError(
            f"Service '{self.name}' was not ready at {self.ready_url} in {timeout} s."
        )

    def signal(self, signum: int) -> None:
        """Send `signum` to the whole process group (uvicorn workers included)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit status."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL now, no chance to clean up (for failure tests)."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def tail(self, lines: int = 30) -> str:
        """The end of the service's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class ServiceGroup:
    """Services started together and stopped in reverse order."""

    services: list[Service] = field(default_factory=list)

    def start(self, service: Service, timeout: float = 60.0) -> Service:
        """Start `service`, wait until it is ready, and keep it for `stop_all`."""
        self.services.append(service)
        service.start()
        service.wait_ready(timeout)
        return service

    def stop_all(self) -> None:
        """Stop every service, last started first."""
        for service in reversed(self.services):
            service.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[ServiceGroup]:
        """Stop every service on the way out, also on errors and Ctrl-C."""
        try:
            yield self
        finally:
            self.stop_all()
