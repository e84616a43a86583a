"""Initialisers the paper uses (Sec. 4: "we use the initialization in [He et al. 2015]")."""

import mxnet as mx

#: He (MSRA) initialisation as in the authors' Torch code: N(0, sqrt(2 / n)) with n = k * k * c_out.
HE_INIT = mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2.0)
