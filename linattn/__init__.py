"""linattn: the support package of the book *Linearized attention and the kernel regime*.

Every computation of the book lives here; chapters only call it. One idea a module:
``data`` (data sets and subsets), ``attention``, ``models``, ``kernels``, ``ntk``,
``spectra``, ``train``, ``influence``, ``attacks``, ``malleability``, ``claims``.
"""
__version__ = "0.1.0"
