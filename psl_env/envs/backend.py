"""Which implementation runs the environments' hot paths: compiled (numba) or plain numpy.

``backend="auto"`` (the default) uses the compiled kernels of ``psl_env.envs.kernels`` when numba
is installed (``pip install 'psl-gym[fast]'``), ``"numba"`` requires them, ``"numpy"`` never uses
them. Both give the same trajectories (tests check the kernels against the numpy code).
"""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = ("auto", "numba", "numpy")


def load_kernels(backend: str = "auto") -> ModuleType | None:
    """The kernels module for ``backend``, or None when the numpy code runs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r} is not allowed; allowed: {list(BACKENDS)}")
    if backend == "numpy":
        return None
    try:
        # imported on demand: numba is optional and slow to import
        return importlib.import_module(f"{__package__}.kernels")
    except ImportError:
        if backend == "numba":
            raise ValueError("backend: 'numba' needs the numba package (pip install 'psl-gym[fast]'); "
                             "allowed without it: ['auto', 'numpy']") from None
        return None


__all__ = ["BACKENDS", "load_kernels"]
