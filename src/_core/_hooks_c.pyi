"""Type stub for the compiled Context fields and JobOutcome (``_hooks_c``); mirrors ``_hooks_py``."""

from ._hooks_py import BATCH as BATCH, ContextFields as ContextFields, JobOutcome as JobOutcome, SlotMaker as SlotMaker
from ._hooks_py import after_success as after_success, job_context as job_context
