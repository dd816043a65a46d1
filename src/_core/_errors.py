"""Typed errors raised by the core; shared by the compiled modules and their pure twins.

Kept in a plain Python module so both twins raise the very same classes, and
``except fastjobs.CorruptJobError`` works whichever implementation is active.
"""

from __future__ import annotations


class FastjobsError(Exception):
    """Base class of every error fastjobs raises on purpose."""


class CorruptJobError(FastjobsError, ValueError):
    """Bytes that should hold a job or a value cannot be decoded.

    Raised for truncated or malformed msgpack, a wrong shape or field type, or
    a schema version this release does not know. The message says which.
    """


class PayloadTooLargeError(FastjobsError, ValueError):
    """An encoded job or value is larger than the configured size limit.

    Pass smaller arguments (store big data elsewhere and pass its key), or raise
    the limit with ``max_payload=`` on the App.
    """


class UnencodableError(FastjobsError, TypeError):
    """An argument, keyword, result or metadata value cannot travel as msgpack.

    Supported: None, bool, int (64-bit), float, str, bytes, list/tuple, dict with
    str keys, aware datetime, UUID and Decimal.
    """


class InvalidTransition(FastjobsError, ValueError):
    """A job was asked to move between two states the state machine forbids."""


class InvalidOptionError(FastjobsError, ValueError):
    """An option has a value fastjobs refuses (a negative delay, a bad queue name...).

    The message names the option and the accepted range.
    """
