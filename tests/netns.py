"""A private network namespace with its own loopback: the defaults (port 8080, 7071) as a person uses them.

A test that runs the CLI with no ``ENDPOINT`` (so on the local scheduler's default port 8080), or the seed's
curl commands on port 7071, must not meet whatever else listens on this shared machine, nor disturb it. In a
namespace of its own (``unshare --net``, util-linux; as root, or as a user through a user namespace) the
loopback is private: the ports are free, and nothing started there is reachable from outside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

# Brings ``lo`` up (SIOCSIFFLAGS: no iproute2 needed), says so, holds the namespace open until stdin closes.
_HOLDER = """
import fcntl, socket, struct, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    request = struct.pack("16sH14s", b"lo", 0, b"")
    flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, request))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
print("ready", flush=True)
sys.stdin.read()
"""


class PrivateNetwork:
    """A held-open network namespace; :meth:`command` runs a program inside it."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        unshare = ["unshare", "--net"] if self.as_root else ["unshare", "--map-root-user", "--net"]
        self.holder = subprocess.Popen(
            [*unshare, "--", sys.executable, "-c", _HOLDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "ready":
            self.holder.kill()
            _, error = self.holder.communicate()
            raise OSError(f"cannot make a network namespace: {error.strip()}")

    def command(self, *argv: str) -> list[str]:
        target = str(self.holder.pid)
        if self.as_root:
            return ["nsenter", f"--net=/proc/{target}/ns/net", "--", *argv]
        return ["nsenter", "--preserve-credentials", "--user", "--net", "--target", target, "--", *argv]

    def close(self) -> None:
        assert self.holder.stdin is not None
        self.holder.stdin.close()
        self.holder.wait(timeout=30)


def private_network_or_skip() -> PrivateNetwork:
    """A private network, or a skip where the machine cannot make one (never under CI, where it must)."""
    missing = [tool for tool in ("unshare", "nsenter") if shutil.which(tool) is None]
    try:
        if missing:
            raise OSError(f"{' and '.join(missing)} not found (Debian's util-linux)")
        return PrivateNetwork()
    except OSError as error:
        if os.environ.get("CI"):
            pytest.fail(f"a private network namespace is needed here: {error}")
        pytest.skip(f"no private network namespace on this machine: {error}")


class KernelInPrivateNetwork(KernelManager):
    """A Jupyter kernel in a network namespace: ``network`` if given, else one of its own (closed when the
    kernel shuts down, kept across restarts). A notebook there starts the local scheduler on the default
    port 8080 whatever else listens on this machine's; the client reaches the kernel over Unix sockets
    (``transport="ipc"``, at an absolute path), which do not depend on the network."""

    def __init__(self, network: PrivateNetwork | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"monitoring-kernel-{uuid.uuid4().hex}"))
        super().__init__(**kwargs)
        self.network = network
        self._own_network: PrivateNetwork | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        if self.network is None:
            self._own_network = self.network = private_network_or_skip()
        return self.network.command(*super().format_kernel_cmd(extra_arguments))

    def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        try:
            super().shutdown_kernel(now=now, restart=restart)
        finally:
            if self._own_network is not None and not restart:
                self._own_network.close()
                self._own_network = self.network = None


def run_nbval_kernels_in_private_networks() -> None:
    """nbval starts each notebook's kernel with ``nbval.kernel.KernelManager``: make that a kernel in a
    network of its own, so notebooks can run beside each other (and beside anything on port 8080)."""
    import nbval.kernel

    nbval.kernel.KernelManager = KernelInPrivateNetwork
