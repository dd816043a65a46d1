"""stub"""
from benchmarks.faults.harness import Row, Run


async def _todo(run: Run, row: Row) -> None:
    row.error = "not written yet"

server_restart = connection_kills = clock_skew = bad_data = many_processes = sustained = _todo
