"""seedgrid's benchmarks: ``python -m benchmarks`` (CPU, a few minutes) and ``python -m benchmarks.gpu``.

Every comparison is measured side by side in the same run and quoted as a ratio; absolute
figures are only meaningful together with the machine they were taken on, which every
result file records. See ``benchmarks/README.md``.
"""
