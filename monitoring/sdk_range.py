"""The releases of the Durable Task SDK this package supports, and those its fast path was verified on.

Pure and free of SDK imports, so it can be asked before anything imports ``durabletask``:
``python -m monitoring`` refuses an SDK outside :data:`SUPPORTED` with one line (exit 2), and
:mod:`monitoring.runtime` raises :class:`UnsupportedSdkError` on import for library users.
``pyproject.toml`` declares the same range (``tests/test_worker_choice.py`` keeps the two equal).
"""

from __future__ import annotations

from importlib import metadata

PACKAGES = ("durabletask", "durabletask-azuremanaged")
SUPPORTED = (1, 10), (1, 13)  # from 1.10 (inclusive) to 1.13 (exclusive)
SUPPORTED_TEXT = ">=1.10,<1.13"
OLDEST = "1.10.0"  # the release CI also runs the worker, client and scheduler tests on
# The releases the fast path (monitoring.runtime.work_loop and warm_replay, which read the SDK's private
# names) ran the suite on: the pinned one and the oldest. Any other supported release gets the SDK's worker.
FAST_PATH_VERIFIED = frozenset({"1.12.0", OLDEST})


class UnsupportedSdkError(ImportError):
    """The installed Durable Task SDK is missing or outside :data:`SUPPORTED`; the message says which."""


def installed(package: str = "durabletask") -> str | None:
    """The installed release of ``package`` (None if it is not installed)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version: ``"1.12.0"`` -> ``(1, 12, 0)``, ``"1.13.0b1"`` -> ``(1, 13, 0)``."""
    parts: list[int] = []
    for part in version.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(parts)


def problem() -> str | None:
    """One line saying what is wrong with the installed SDK, or None if every package is in range."""
    low, high = SUPPORTED
    for package in PACKAGES:
        version = installed(package)
        if version is None:
            return f"{package} is not installed: pip install -r requirements.txt ({package}{SUPPORTED_TEXT})"
        if not low <= release(version) < high:
            return (
                f"{package} {version} is installed; this package supports {package}{SUPPORTED_TEXT} "
                "(pip install -r requirements.txt installs the tested release)"
            )
    return None


def require() -> None:
    """Raise :class:`UnsupportedSdkError` unless the installed SDK is supported."""
    message = problem()
    if message is not None:
        raise UnsupportedSdkError(message)


def fast_path_verified() -> bool:
    """True if both SDK packages are a release the fast path was verified on."""
    return all(installed(package) in FAST_PATH_VERIFIED for package in PACKAGES)
