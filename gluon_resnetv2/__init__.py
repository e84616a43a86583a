"""gluon-resnetv2: the reference MXNet Gluon implementation of *Identity Mappings in Deep Residual
Networks* (He, Zhang, Ren, Sun, ECCV 2016).

>>> from gluon_resnetv2 import get_model, list_models
>>> net = get_model('cifar_resnet110_v2', classes=10)
"""

from . import _compat  # noqa: F401  (numpy aliases before mxnet is imported anywhere)
from .deploy.export import export
from .nets.cifar import cifar_resnet
from .nets.gluoncv import from_gluoncv
from .nets.imagenet import imagenet_resnet
from .nets.network import Layout, ResidualNetwork
from .nets.zoo import get_model, get_spec, list_models, register

__version__ = "0.1.0"
__all__ = [
    "get_model",
    "list_models",
    "get_spec",
    "register",
    "from_gluoncv",
    "export",
    "cifar_resnet",
    "imagenet_resnet",
    "ResidualNetwork",
    "Layout",
]
