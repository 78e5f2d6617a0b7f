"""Monitoring: Prometheus metrics, health checks and the HTTP endpoint that serves them.

- :mod:`.observer` — :class:`Observer`, what the core (engine, backends, renderer, worker) tells its watcher.
- :mod:`.metrics` — :class:`Metrics`: one process's registry and instruments, with small recording methods.
- :mod:`.probe` — :class:`LoopProbe`: short calls onto the event loop from another thread, with a deadline.
- :mod:`.http` — :class:`MonitoringServer`: ``/metrics``, ``/healthz`` and ``/readyz`` from a thread of its own.
- :mod:`.health` — what the bot and a worker check for ``/readyz``, and the gauges read at scrape time.

Nothing here imports torch or discord; importing this package is cheap (the engine imports the observer
protocol for type checking only).
"""
