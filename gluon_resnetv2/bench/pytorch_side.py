"""The PyTorch side of the throughput benchmark: the twin network of :mod:`gluon_resnetv2.torch_reference`.

PyTorch is optional (``pip install torch`` adds the reference), so it is imported only inside the
functions that need it.
"""

import contextlib
import importlib.util

from .timing import time_steps
from .workload import SGD, input_shape


def torch_available():
    """True when PyTorch can be imported (it is optional: ``pip install torch`` to add the reference)."""
    return importlib.util.find_spec("torch") is not None


def torch_version():
    """``torch.__version__`` (PyTorch must be installed)."""
    import torch  # optional dependency

    return torch.__version__


def measure_pytorch(network, mode, batch_size, iterations, warmup, repeats=1, classes=10, threads=None):
    """(train images/s, inference images/s) of the PyTorch twin in eager mode; ``mode`` 'eager' (fp32) or
    'bf16' (``torch.autocast('cpu', torch.bfloat16)``)."""
    import torch  # optional dependency

    from ..torch_reference import torch_model  # imports torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch_model(network, classes=classes)
    x = torch.randn((batch_size,) + input_shape(network))
    y = torch.randint(0, classes, (batch_size,))
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=SGD["learning_rate"], momentum=SGD["momentum"], weight_decay=SGD["wd"])

    def precision():
        if mode == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step():
        opt.zero_grad(set_to_none=True)
        with precision():
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    net.train()
    train = time_steps(train_step, iterations, warmup, repeats) * batch_size
    net.eval()

    def infer_step():
        with torch.inference_mode(), precision():
            net(x)

    infer = time_steps(infer_step, iterations, warmup, repeats) * batch_size
    return train, infer
