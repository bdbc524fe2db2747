"""Benchmarks: ``roitrack bench {stages,overhead,scaling,soak,floor}``.

Each module exposes ``run(opts: BenchOptions) -> dict`` (the JSON result), ``markdown(result) -> str`` (the
table written to ``docs/bench/<name>.md``) and, where a curve says more than a table, ``plot(result, path)``.
Figures are ratios against a baseline measured in the same run, so they stay meaningful on a shared machine.
"""
