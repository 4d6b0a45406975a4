"""Which implementation runs the hot paths: compiled (numba) or plain numpy.

``backend="auto"`` (the default) uses the compiled kernels when numba is installed (``pip install
'psl-gym[fast]'``), ``"numba"`` requires them, ``"numpy"`` never uses them. Both give the same
results (tests check every kernel against the numpy reference it compiles). Kernel modules are
imported on demand: numba is optional and slow to import.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = ("auto", "numba", "numpy")


def load_kernels(backend: str = "auto", module: str = "psl_env.resources.kernels") -> ModuleType | None:
    """The kernels ``module`` for ``backend``, or None when the numpy code runs."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r} is not allowed; allowed: {list(BACKENDS)}")
    if backend == "numpy":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        if backend == "numba":
            raise ValueError("backend: 'numba' needs the numba package (pip install 'psl-gym[fast]'); "
                             "allowed without it: ['auto', 'numpy']") from None
        return None


__all__ = ["BACKENDS", "load_kernels"]
