"""Azurite (the Azure Storage emulator, npm `azurite`, installed into tests/harness/azurite by
`make install`): a real Blob API on 127.0.0.1 for the model repository tests (tests/azurite.py) and
`python -m bench.model_startup`.

The emulator runs in memory (`--inMemoryPersistence`), on a free port, without telemetry, and with
`--skipApiVersionCheck` (newer `azure-storage-blob` releases send API versions Azurite may not know yet).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
AZURITE_BLOB = HERE / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
#: The emulator's well-known account key (Azurite README, "Default Storage Account"); public by design.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT_S = 60


@dataclass
class Azurite:
    """A running emulator: `endpoint` `http://127.0.0.1:<port>/devstoreaccount1`, its connection string."""

    port: int
    process: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, key: str = ACCOUNT_KEY) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
                f"BlobEndpoint={self.endpoint};")

    def url(self, container: str, blob: str) -> str:
        return f"{self.endpoint}/{container}/{blob}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = START_TIMEOUT_S) -> None:
    """Return once 127.0.0.1:`port` accepts a connection; raise if `process` exits or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"azurite-blob exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"azurite-blob: port {port} closed after {timeout_s} s") from None
            time.sleep(0.05)  # poll interval while the emulator binds its port


def start_azurite() -> Azurite:
    """Start `azurite-blob` on a free port and wait until it accepts connections."""
    if not AZURITE_BLOB.exists():
        raise FileNotFoundError(
            f"{AZURITE_BLOB} is missing: run `make install` (npm ci in tests/harness/azurite)"
        )
    port = free_port()
    process = subprocess.Popen(
        [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Azurite(port, process)


def stop_azurite(emulator: Azurite) -> None:
    """Terminate the emulator (kill it if it has not exited after 10 s)."""
    emulator.process.terminate()
    try:
        emulator.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        emulator.process.kill()
        emulator.process.wait()
