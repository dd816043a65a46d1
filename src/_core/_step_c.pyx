"""A coroutine's first step as a Task takes it (Cython twin of ``_step_py``; see there).

``PyIter_Send`` returns a coroutine's return value without raising StopIteration, and
``PyContext_Enter``/``PyContext_Exit`` enter the Task's context without a ``Context.run``
call: the two costs of a first step that a Python twin cannot avoid.
"""

from cpython.ref cimport PyObject, Py_XDECREF
from asyncio import tasks as _tasks

cdef extern from "Python.h":
    int PyIter_Send(object iterator, object arg, PyObject **presult) except? -1
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1

cdef dict _current_tasks = _tasks._current_tasks
cdef object _enter_task = _tasks._enter_task
cdef object _leave_task = _tasks._leave_task


def first_step(task, loop, coro, context):
    """Send ``None`` into ``coro`` with ``task`` current on ``loop``, inside ``context``.

    Returns ``(True, value)`` if the coroutine returned ``value``, ``(False, yielded)`` if it
    suspended on ``yielded``; raises what the coroutine raised. The Task current before is
    current again after, whatever happened.
    """
    cdef PyObject* result = NULL
    cdef int status
    prev = _current_tasks.get(loop)
    if prev is not None:
        _leave_task(loop, prev)
    _enter_task(loop, task)
    PyContext_Enter(context)
    try:
        status = PyIter_Send(coro, None, &result)  # 0: returned, 1: yielded, -1: raised (raises here)
    finally:
        PyContext_Exit(context)
        _leave_task(loop, task)
        if prev is not None:
            _enter_task(loop, prev)
    value = <object>result
    Py_XDECREF(result)
    return status == 0, value
