"""``python -m service`` as a real process in tests: wait until it is ready."""

from __future__ import annotations

import http.client
import subprocess
import time


def wait_ready(process: subprocess.Popen, port: int, timeout_s: float = 120) -> None:
    """Poll ``GET /readyz`` on 127.0.0.1:``port`` every 0.1 s (the readiness probe's poll) until it is 200.
    Fails the test, with the process's output, if it exits first or is not ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"not ready within {timeout_s} s"
        time.sleep(0.1)
