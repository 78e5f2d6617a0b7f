"""torch.compile without surprises: static shapes, every reachable shape warmed up, no compile in service.

A compiled module (the family's denoiser and the VAE decoder) goes through :class:`StaticCompiled`,
which becomes the module's ``forward`` (so the pipeline keeps the module itself, every attribute
diffusers reads from it, and its hooks, which run outside the compiled code):

* it is compiled with ``dynamic=False``: one graph per input shape, no symbolic sizes;
* until :meth:`StaticCompiled.seal` each new input signature (the shapes, dtypes and strides of its
  tensors, the values of its other arguments) compiles, and the time of that first call is logged;
  :meth:`bot.diffusion.pipeline.Pipeline.warm_up` runs every shape members can reach, then seals;
* once sealed, a signature that was warmed runs the compiled code, and any other runs the module
  eagerly (logged once per signature): a member's job never waits for a compilation;
* as a second guard, once any model is sealed the process runs with
  ``torch.compiler.set_stance("eager_on_recompile")``: if a guard that the signature does not
  cover fails (a hook, a global flag), dynamo runs that call eagerly instead of recompiling. While a
  model warms up the stance is ``default`` again (the stance is process-wide).

:func:`use_cache` points inductor's on-disk caches (FX graphs, autotuning, Triton kernels) at
``model.compile_cache`` so that a restart reuses them: the warm-up then takes seconds per shape
instead of minutes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECOMPILE_LIMIT = 512
"""dynamo's per-code-object limit, raised: every size × batch of every compiled module is one entry."""


class _Stance:
    """The process-wide compiler stance: ``default`` while any model warms up, else ``eager_on_recompile``."""

    lock = threading.Lock()
    warming = 0


def use_cache(path: str) -> str:
    """Keep inductor's caches in ``path`` (created if missing); returns the absolute path."""
    folder = Path(path).expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by inductor at each use; Triton's cache lives under it
    return str(folder)


def raise_recompile_limit() -> None:
    import torch._dynamo

    config: Any = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 8 * RECOMPILE_LIMIT)


def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What a static-shape graph is specialised on: tensors' shapes, dtypes, devices, strides; other values."""
    return (_key(args), _key(kwargs))


def _key(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device, value.stride(), value.requires_grad)
    if isinstance(value, dict):
        return ("dict", tuple((k, _key(v)) for k, v in sorted(value.items(), key=lambda item: str(item[0]))))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if value is None or isinstance(value, bool | int | float | str):
        return (type(value).__name__, value)
    return (type(value).__qualname__,)


def describe(key: tuple[Any, ...]) -> str:
    """The tensor shapes of a signature, e.g. ``8×4×64×64, 8×77×768``."""
    shapes: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, tuple) and value and value[0] == "tensor":
            shapes.append("×".join(str(d) for d in value[1]) or "scalar")
        elif isinstance(value, tuple):
            for item in value:
                walk(item)

    walk(key)
    return ", ".join(shapes)


class StaticCompiled:
    """``module`` compiled once per input signature while warming up; afterwards only the warmed ones run compiled."""

    def __init__(self, module: Any, label: str, options: dict[str, Any]) -> None:
        import torch

        self.module = module
        self.label = label
        self.compile_seconds: dict[str, float] = {}
        """Seconds of the first (compiling) call of each warmed signature, by its shapes."""
        self.eager_calls = 0
        """Calls after :meth:`seal` with a signature that was not warmed (they ran eagerly)."""
        self.sealed = False
        self._eager: Callable[..., Any] = module.forward
        self._compiled: Callable[..., Any] = torch.compile(module.forward, dynamic=False, **options)
        self._warmed: set[tuple[Any, ...]] = set()
        self._unforeseen: set[tuple[Any, ...]] = set()
        module.forward = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = signature(args, kwargs)
        if key in self._warmed:
            return self._compiled(*args, **kwargs)
        if self.sealed:
            self.eager_calls += 1
            if key not in self._unforeseen:
                self._unforeseen.add(key)
                log.warning("%s: shape %s was not warmed up; it runs eagerly (not compiled)", self.label, describe(key))
            return self._eager(*args, **kwargs)
        start = time.perf_counter()
        out = self._compiled(*args, **kwargs)
        seconds = time.perf_counter() - start
        self._warmed.add(key)
        self.compile_seconds[describe(key)] = seconds
        log.info("compiled %s for %s in %.1f s", self.label, describe(key), seconds)
        return out

    @property
    def shapes(self) -> int:
        return len(self._warmed)

    def seal(self) -> None:
        self.sealed = True

    def unseal(self) -> None:
        self.sealed = False


def compile_module(module: Any, label: str, options: dict[str, Any]) -> StaticCompiled:
    raise_recompile_limit()
    return StaticCompiled(module, label, options)


def compiled_parts(pipe: Any) -> list[StaticCompiled]:
    """The :class:`StaticCompiled` wrappers of a pipeline's modules (none without ``model.compile``)."""
    found: list[StaticCompiled] = []
    for component in getattr(pipe, "components", {}).values():
        modules = getattr(component, "modules", None)
        if modules is None:
            continue
        for module in modules():
            wrapper = module.__dict__.get("forward")
            if isinstance(wrapper, StaticCompiled):
                found.append(wrapper)
    return found


class warming:  # noqa: N801 - used as a context manager, like torch's own
    """While a model warms up: compiles allowed (``default`` stance); afterwards ``eager_on_recompile``."""

    def __init__(self, parts: list[StaticCompiled]) -> None:
        self.parts = parts

    def __enter__(self) -> warming:
        import torch

        with _Stance.lock:
            _Stance.warming += 1
            torch.compiler.set_stance("default")
        for part in self.parts:
            part.unseal()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        for part in self.parts:
            part.seal()
        with _Stance.lock:
            _Stance.warming -= 1
            if _Stance.warming == 0:
                torch.compiler.set_stance("eager_on_recompile")


def compile_counters() -> dict[str, int]:
    """dynamo's own counts since the process started: graphs compiled (one per shape) and graph breaks."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }
