"""A real Triton Inference Server for tests: scripts/triton_serve.py under .venv-triton
(made by scripts/triton_venv.sh; ``make test`` runs it) on loopback ports chosen free."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-triton" / "bin" / "python"
SCRIPT = ROOT / "scripts" / "triton_serve.py"
SKIP_REASON = ("no .venv-triton (a real Triton server, PyTriton, for these tests): run `bash scripts/triton_venv.sh` "
               "or `make test`")


def available() -> bool:
    return PYTHON.is_file()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class TritonServer:
    """The repository in ``folder`` served on loopback; started, killed (the whole process
    group: the Python front, tritonserver and its model processes) and restarted like a
    supervised service."""

    def __init__(self, folder: Path, log: Path):
        self.folder, self.log = folder, log
        self.grpc, self.http, self.metrics = free_ports(3)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"triton:grpc://127.0.0.1:{self.grpc}/hearflow"

    def start(self, timeout: float = 120.0) -> float:
        """Start and wait until the models are loaded; returns time.monotonic() when ready."""
        cmd = [str(PYTHON), str(SCRIPT), str(self.folder), "--grpc-port", str(self.grpc),
               "--http-port", str(self.http), "--metrics-port", str(self.metrics),
               "--log-file", str(self.log.with_name("tritonserver.log"))]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("ready"):
                return time.monotonic()
            if not line and self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"Triton server did not start; its log: {self.log}")

    def restart_if_died(self) -> float | None:
        """What a supervisor does: if the server exited (the serve script exits 1 when
        tritonserver dies), start it again; returns time.monotonic() when ready, else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        self.kill()
        return self.start()

    def tritonserver_pid(self) -> int:
        """The tritonserver process itself (a child of the Python front)."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                name = (stat.parent / "comm").read_text().strip()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and name == "tritonserver":  # fields[2]: the process group
                return int(stat.parent.name)
        raise RuntimeError("no tritonserver process in the server's group")

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc = None
