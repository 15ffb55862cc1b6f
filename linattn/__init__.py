"""linattn: the support package of the book *Linearized attention and the kernel regime*.

Every computation of the book lives here; chapters only call it. One idea a module:
``data`` (data sets and subsets), ``attention``, ``models``, ``kernels``, ``ntk``,
``spectra``, ``train``, ``predictors``, ``distance``, ``experiments``, ``influence``,
``attacks``, ``malleability``, ``claims``, ``results``.
"""
import os as _os

# OpenMP threads that spin while waiting starve the Jupyter kernel and the test process on a
# small machine (measured: a chapter took 233 s instead of 55-85 s on 2 cores). Set before
# torch is imported, which importing this package does not do.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
