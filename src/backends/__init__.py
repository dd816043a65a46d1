"""Backends: where jobs live. The URL scheme picks one (see :func:`create_backend`)."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import BackendUnavailableError, ConfigurationError
from .base import (
    BROKEN,
    Ack,
    AckKind,
    Backend,
    BackendOptions,
    Beat,
    Claim,
    DependencyMode,
    Limit,
    NewJob,
    QueueStats,
    StoredJob,
    WorkerInfo,
)

# scheme -> (module, class, pip extra): imported lazily so that a missing optional
# client only matters to the apps that use it.
_SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("fastjobs.backends.memory", "MemoryBackend", None),
    "redis": ("fastjobs.backends.redis", "RedisBackend", "redis"),
    "rediss": ("fastjobs.backends.redis", "RedisBackend", "redis"),
    "unix": ("fastjobs.backends.redis", "RedisBackend", "redis"),
    "postgresql": ("fastjobs.backends.postgres", "PostgresBackend", "postgres"),
    "postgres": ("fastjobs.backends.postgres", "PostgresBackend", "postgres"),
}


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and reprs).

    Example:
        >>> redact_url("redis://user:secret@host:6379/0")
        'redis://user:***@host:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def backend_class(url: str) -> type[Backend]:
    """Return the backend class for a URL, with an install hint if its client is missing."""
    scheme = urlsplit(url).scheme.lower()
    try:
        module_name, class_name, extra = _SCHEMES[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ConfigurationError(
            f"unsupported backend URL {redact_url(url)!r}: the scheme must be one of {known}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'fastjobs[{extra}]'" if extra else "reinstall fastjobs"
        raise BackendUnavailableError(
            f"the {scheme}:// backend needs a client library that is not installed ({exc}); run: {hint}"
        ) from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls


def create_backend(url: str, options: BackendOptions, **extra: Any) -> Backend:
    """Build (not connect) the backend for ``url``.

    Example:
        >>> from fastjobs.backends import create_backend, BackendOptions
        >>> create_backend("memory://", BackendOptions()).url
        'memory://'
    """
    return backend_class(url)(url, options, **extra)


__all__ = [
    "BROKEN", "Ack", "AckKind", "Backend", "BackendOptions", "Claim", "DependencyMode", "Limit", "NewJob", "QueueStats",
    "StoredJob", "Beat", "WorkerInfo",
    "backend_class", "create_backend", "redact_url",
]
