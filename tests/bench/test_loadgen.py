"""bench.loadgen: the load generator's connections behave like a real client's."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_connections_set_tcp_nodelay_so_no_request_waits_for_a_delayed_ack() -> None:
    """geventhttpclient leaves Nagle on and writes headers and body separately: the body's last segment
    then waits ~40 ms for the server's delayed ACK. bench.loadgen sets TCP_NODELAY on every connection it
    opens (as curl and httpx do). Run in a subprocess: the module monkey-patches the standard library."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        script = textwrap.dedent(f"""
            import socket
            import bench.loadgen  # noqa: F401  (patches geventhttpclient's ConnectionPool)
            from geventhttpclient.connectionpool import ConnectionPool
            sock = ConnectionPool("127.0.0.1", {port}, "127.0.0.1", {port}).get_socket()
            print(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        """)
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] != "0"
