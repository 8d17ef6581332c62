"""Loopback servers for the image-URL tests: an image server with hostile routes, and a listener that
records whether anything connected to it. Both bind 127.0.0.1 only (ephemeral ports)."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class ImageServer:
    """``http.server`` on 127.0.0.1 serving ``image`` (JPEG bytes) and hostile answers.

    Routes: ``/photo.jpg`` the image; ``/redirect?to=URL`` a 302 to URL; ``/chain/N`` N redirects then the
    image; ``/html`` text/html; ``/declared-big`` a Content-Length of ``big`` bytes; ``/streamed-big``
    ``big`` bytes without Content-Length; ``/stall`` headers, then nothing until ``release`` is set (at
    most 30 s); ``/missing`` 404. ``requests`` records ``(path, Host header)``. With ``tls`` (a server
    context) it speaks HTTPS and ``server_names`` records each client's TLS SNI.
    """

    def __init__(self, image: bytes, big: int, tls: ssl.SSLContext | None = None) -> None:
        self.image, self.big = image, big
        self.requests: list[tuple[str, str]] = []
        self.server_names: list[str | None] = []
        self.release = threading.Event()
        self.stalled = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Host", "")))
                path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
                if path == "/photo.jpg":
                    self._send(200, "image/jpeg", outer.image)
                elif path == "/redirect":
                    self._redirect(query["to"][0])
                elif path.startswith("/chain/"):
                    left = int(path.rsplit("/", 1)[1])
                    self._redirect(f"/chain/{left - 1}" if left else "/photo.jpg")
                elif path == "/html":
                    self._send(200, "text/html; charset=utf-8", b"<html>not an image</html>")
                elif path == "/declared-big":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(outer.big))
                    self.end_headers()
                    self._write(outer.image)
                elif path == "/streamed-big":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                    for _ in range(outer.big // 65536 + 1):
                        if not self._write(b"\xff" * 65536):
                            break
                elif path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(outer.image)))
                    self.end_headers()
                    outer.stalled.set()
                    outer.release.wait(30)
                else:
                    self._send(404, "text/plain", b"missing")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self._write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _write(self, data: bytes) -> bool:
                try:
                    self.wfile.write(data)
                    return True
                except OSError:  # the fetcher hung up (over its byte limit): expected
                    return False

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """A listening TCP socket on 127.0.0.1 that nobody accepts from: the kernel completes a client's
    handshake into the accept queue when ``connect()`` returns, so ``connections()`` (a non-blocking
    accept of everything queued) tells exactly whether anything connected."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        """How many connections arrived since the last call (each is accepted and closed)."""
        count = 0
        while select.select([self.sock], [], [], 0)[0]:
            conn, _ = self.sock.accept()
            conn.close()
            count += 1
        return count

    def close(self) -> None:
        self.sock.close()
