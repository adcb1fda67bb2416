"""Network isolation of Space apps: each app in a network namespace of its own, holding only ``lo``.

An app's 127.0.0.1 is then private: it can reach neither another Space's app nor anything else on the machine
(nor the outside world). Cove bridges two ways, in threads of its own process (root may enter any namespace):

- `Forwarder` in: a listener on Cove's 127.0.0.1:port (the port the app listens on in its namespace) whose
  connections are relayed to the app's 127.0.0.1:port inside the namespace, so the proxy talks to the app as before;
- `Forwarder` out: a listener inside the namespace on 127.0.0.1:<Cove's port>, relayed to Cove itself, so
  ``HF_ENDPOINT`` works for the app.

Sockets belong to the namespace of the thread that creates them, for good: Cove creates each inside-namespace
socket in a thread that has entered the app's namespace (`setns`) and uses it from anywhere afterwards (connects
it, relays on it). The app's listener is made by a one-off thread; the connections into the app are made by
`Connector`'s one long-lived thread in the namespace, not a new thread per connection.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, ThreadPoolExecutor

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH14x"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def enter_new_netns() -> None:
    """In a child before it drops root: unshare a new network namespace and bring its ``lo`` up."""
    if _libc().unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _setns(ns_fd: int) -> None:
    """Move the calling thread (only it) into the network namespace `ns_fd`."""
    if _libc().setns(ns_fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def in_netns(ns_fd: int, make: Callable[[], socket.socket]) -> socket.socket:
    """`make()` run in a thread that entered the namespace `ns_fd`: the socket it returns lives there."""
    out: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            _setns(ns_fd)
            out.append(make())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            out.append(exc)

    t = threading.Thread(target=run, daemon=True, name="space-netns")
    t.start()
    t.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def listener(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(a: socket.socket, b: socket.socket) -> None:
    t = threading.Thread(target=_pump, args=(b, a), daemon=True, name="space-fwd")
    t.start()
    _pump(a, b)
    t.join()
    a.close()
    b.close()


class Forwarder:
    """Relays each connection accepted on `sock` to a new connection made by `connect()`, until `close()`."""

    def __init__(self, sock: socket.socket, connect: Callable[[], socket.socket], name: str) -> None:
        self.sock = sock
        self.connect = connect
        self._closed = False
        threading.Thread(target=self._serve, daemon=True, name=name).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True, name="space-fwd").start()

    def _one(self, conn: socket.socket) -> None:
        try:
            other = self.connect()
        except OSError:
            conn.close()
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        other.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _relay(conn, other)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        close = getattr(self.connect, "close", None)
        if close is not None:
            close()


class Connector:
    """Connects to host:port from inside the namespace `ns_fd` (None: Cove's own). Only a socket's creation needs
    the namespace: one long-lived thread that entered it makes them (entered now, while `ns_fd` is surely open),
    the caller connects. `close()` ends that thread (while it lives, it holds the namespace)."""

    def __init__(self, ns_fd: int | None, host: str, port: int) -> None:
        self.address = (host, port)
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._maker: ThreadPoolExecutor | None = None
        if ns_fd is not None:
            self._maker = ThreadPoolExecutor(1, "space-netns", initializer=_setns, initargs=(ns_fd,))
            self._maker.submit(lambda: None)

    def __call__(self) -> socket.socket:
        if self._maker is None:
            s = socket.create_connection(self.address, timeout=10)
        else:
            try:
                s = self._maker.submit(socket.socket, self._family, socket.SOCK_STREAM).result()
            except (BrokenExecutor, RuntimeError) as exc:  # setns failed, or closed
                raise OSError(f"no socket in the app's namespace: {exc}") from exc
            try:
                s.settimeout(10)
                s.connect(self.address)
            except OSError:
                s.close()
                raise
        s.settimeout(None)
        return s

    def close(self) -> None:
        if self._maker is not None:
            self._maker.shutdown(wait=False)
