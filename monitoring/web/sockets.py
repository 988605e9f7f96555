"""Listening sockets and loopback names, without the web stack: the CLI and the scheduler import these.

:func:`bind_socket` binds before a server starts, so a taken port is a clear :class:`PortInUseError`;
:func:`is_loopback` is how every local service decides what "this machine only" means.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

__all__ = ["PortInUseError", "bind_socket", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and names under it), any 127.0.0.0/8 address and ``::1``."""
    host = host.strip().lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PortInUseError(OSError):
    """The address cannot be listened on (most often: the port is taken); the message says which and why."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use; stop what listens there or choose another port"
            ) from None
        raise PortInUseError(f"cannot listen on {host} port {port}: {error.strerror or error}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
