"""Raw HTTP/1.1 and WebSocket clients for the chaos driver.

Both send header values exactly as given (str or bytes, so non-UTF-8 bytes
reach Envoy), use one connection per request, share no state between
threads (no cookie jar, no global configuration) and never follow
redirects. Only the standard library is used.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import struct
from dataclasses import dataclass, field

Header = tuple[str, "str | bytes"]


class _HeaderLookup:
    """Header access for answers whose `headers` are (lowercased name, value) pairs."""

    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n == name]


@dataclass
class Reply(_HeaderLookup):
    """One answer: status, headers (lowercased names, every value kept), body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def http_request(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: list[Header],
    body: bytes | None = None,
    timeout: float = 30.0,
) -> Reply:
    """Send one request with `path` verbatim and `headers` as given (a Host
    header is added unless present). Raises OSError/http.client errors when
    the server does not answer."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if not any(n.lower() == "host" for n, _ in headers):
            conn.putheader("Host", f"{host}:{port}")
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Connection", "close")
        conn.endheaders(body)
        raw = conn.getresponse()
        data = raw.read()
        return Reply(status=raw.status, headers=[(k.lower(), v) for k, v in raw.getheaders()], body=data)
    finally:
        conn.close()


@dataclass
class WsResult(_HeaderLookup):
    """A WebSocket attempt: the handshake's status (101 when upgraded), its
    headers, and for an upgrade the echoed message (None if none came)."""

    status: int
    headers: list[tuple[str, str]]
    echo: str | None = None
    body: bytes = b""


def _read_until(sock: socket.socket, marker: bytes, limit: int = 256 * 1024) -> tuple[bytes, bytes]:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed during the handshake")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("handshake answer too large")
    head, _, rest = data.partition(marker)
    return head, rest


def _recv_exact(sock: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        buf.extend(chunk)
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def websocket_exchange(
    host: str,
    port: int,
    path: str,
    headers: list[Header],
    message: str,
    timeout: float = 30.0,
) -> WsResult:
    """Open a WebSocket with `headers` (Origin, Cookie, Sec-WebSocket-Protocol
    are the caller's), and when upgraded send `message` as one text frame
    and read one frame back. A refused handshake returns its status and body."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1".encode(),
            f"Host: {host}:{port}".encode(),
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}".encode(),
            b"Sec-WebSocket-Version: 13",
        ]
        for name, value in headers:
            v = value if isinstance(value, bytes) else value.encode("latin-1")
            lines.append(name.encode() + b": " + v)
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        head, rest = _read_until(sock, b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        hdrs = []
        for line in header_lines:
            name, _, value = line.partition(":")
            hdrs.append((name.strip().lower(), value.strip()))
        if status != 101:
            length = next((int(v) for n, v in hdrs if n == "content-length" and v.isdigit()), 0)
            buf = bytearray(rest)
            try:
                body = _recv_exact(sock, min(length, 65536), buf)
            except (OSError, ConnectionError):
                body = bytes(buf)
            return WsResult(status=status, headers=hdrs, body=body)
        sock.sendall(_frame(0x1, message.encode()))
        buf = bytearray(rest)
        b0, b1 = _recv_exact(sock, 2, buf)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", _recv_exact(sock, 2, buf))
        elif n == 127:
            (n,) = struct.unpack("!Q", _recv_exact(sock, 8, buf))
        payload = _recv_exact(sock, n, buf)
        echo = payload.decode("utf-8", "replace") if (b0 & 0x0F) == 0x1 else None
        try:
            sock.sendall(_frame(0x8, struct.pack("!H", 1000)))
        except OSError:
            pass
        return WsResult(status=101, headers=hdrs, echo=echo)
    finally:
        sock.close()
