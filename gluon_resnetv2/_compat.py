"""Make mxnet 1.9.1 importable on the numpy that is installed.

mxnet 1.9.1 still refers to ``np.bool``, ``np.int``, ``np.float``, ``np.object`` ... which numpy 1.24
removed.  On Python 3.11 we pin ``numpy<1.24`` and this module does nothing; on Python 3.12, where no
numpy<1.24 wheel exists, it restores the aliases *before* mxnet is imported.  The package's
``__init__`` imports this module first, so every module inside the package (whose import runs
``__init__`` before it) simply writes ``import mxnet as mx``; code outside the package (tests, scripts)
imports ``gluon_resnetv2`` before mxnet.

It also fixes MXNet's OpenMP thread count before libmxnet loads (:func:`gluon_resnetv2.cpu.configure`:
one thread per physical core unless ``OMP_NUM_THREADS``/``MXNET_OMP_MAX_THREADS`` is set), and loads the CUDA
libraries of a CUDA build from NVIDIA's pip wheels (:func:`gluon_resnetv2.cuda_libs.preload`).
"""

import warnings

import numpy as np

from . import cpu, cuda_libs

cpu.configure()
cuda_libs.preload()

_ALIASES = {"bool": bool, "int": int, "float": float, "complex": complex, "object": object, "str": str}

for _name, _type in _ALIASES.items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            getattr(np, _name)
        except AttributeError:
            setattr(np, _name, _type)
