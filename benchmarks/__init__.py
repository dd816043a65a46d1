"""fastjobs benchmarks: ``python -m benchmarks`` (end to end) and pytest-benchmark micro-benchmarks."""
