"""A periodic task for the multi-process tests: every run appends one line to a file."""

import os

import fastjobs

app = fastjobs.App(os.environ["FASTJOBS_TEST_URL"], prefix=os.environ["FASTJOBS_TEST_PREFIX"])


@app.periodic(0.25, name="every_quarter_second", misfire_grace=0.2)
def every_quarter_second() -> None:
    # O_APPEND writes of one short line are atomic across processes.
    with open(os.environ["FASTJOBS_TEST_RUNS"], "a") as runs:
        runs.write(f"{os.getpid()}\n")
