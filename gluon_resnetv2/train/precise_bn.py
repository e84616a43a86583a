"""``--precise-bn N``: before each evaluation, the BatchNorm running statistics are recomputed from ``N``
training batches with the current weights (issue 21; detectron2's ``PreciseBN``, Wu & Johnson 2021).

During training BatchNorm keeps an exponential moving average of its batch statistics (MXNet: momentum
0.9), which mixes in statistics of weights that have since changed.  Here each BatchNorm's running mean
(variance) becomes the true average of the per-batch means (variances) over the ``N`` batches, as
detectron2's ``update_bn_stats`` computes them: a training-mode pass per batch, no weight change.  The
paper evaluates with the moving averages (Sec. 3.1).

MXNet 1.9.1 updates a BatchNorm's running statistics in its *backward* pass (a forward pass in training
mode, recorded or not, leaves them unchanged: checked on CPU contexts, imperative and hybridized), so each
batch is a recorded forward pass and a backward pass from a zero head gradient.  That backward writes
zero gradients into the parameters; the next training step overwrites them before the update.

The statistics of one batch are read through the operator's own update: with the running value set to
zero before the batch, ``running = momentum * 0 + (1 - momentum) * batch``, so ``batch = running / (1 -
momentum)``.  Each device sees its slice of a batch, as in training (under ``--sync-bn`` the whole batch);
the per-device averages are then averaged over the devices by the run's usual statistics sync.  The
batches are the first ``N`` of the current epoch (fewer when the epoch has fewer), made in the main
thread from the loader's deterministic order and augmentation, so a resumed run recomputes the same.
"""

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import nn

from ..units.unit import walk_blocks
from .devices import split_batch


def batch_norms(net):
    """Every BatchNorm of ``net`` (SyncBatchNorm included), in order."""
    return [block for block in walk_blocks(net) if isinstance(block, nn.BatchNorm)]


def loader_batches(loader, count, epoch):
    """The first ``count`` batches of ``epoch`` of a training loader, as ``(data, label)`` NDArrays."""
    for number, indices in enumerate(loader.batch_indices(epoch)[:count]):
        data, label = loader.make_batch(epoch, number, indices)
        if not isinstance(data, mx.nd.NDArray):
            data = mx.nd.array(data, dtype=data.dtype)
            label = mx.nd.array(label, dtype="float32")
        yield data, label


def recompute_bn_stats(net, batches, contexts, prepare=None, dtype="float32", parallel=None):
    """Set every BatchNorm's running mean and variance of ``net`` (each device's copy) to the average of
    the per-batch statistics over ``batches``; returns the number of batches used.

    ``parallel(function, items)``: how to run the devices' forward passes (:func:`.syncbn.in_threads`
    under SyncBatchNorm, which blocks across devices); default one after the other.
    """
    norms = batch_norms(net)
    if not norms:
        return 0
    momenta = [float(norm._kwargs.get("momentum", 0.9)) for norm in norms]
    stats = [(norm.running_mean, norm.running_var) for norm in norms]
    sums = [[[mx.nd.zeros_like(copy) for copy in param.list_data()] for param in pair] for pair in stats]
    used = 0
    for data, label in batches:
        for pair in stats:
            for param in pair:
                for copy in param.list_data():
                    copy[:] = 0
        datas, _ = split_batch(data, label, contexts, prepare)
        if parallel is not None:
            mx.nd.waitall()  # SyncBatchNorm: no copy between devices may queue behind it (.syncbn)

        def forward(x):
            with autograd.record():
                out = net(x.astype(dtype, copy=False))
            out.backward(mx.nd.zeros_like(out))  # updates the running statistics (and nothing else)

        if parallel is not None:
            parallel(forward, datas)
        else:
            for x in datas:
                forward(x)
        for pair, pair_sums, momentum in zip(stats, sums, momenta):
            for param, param_sums in zip(pair, pair_sums):
                for copy, total in zip(param.list_data(), param_sums):
                    total += copy / (1.0 - momentum)
        used += 1
    if used:
        for pair, pair_sums in zip(stats, sums):
            for param, param_sums in zip(pair, pair_sums):
                for copy, total in zip(param.list_data(), param_sums):
                    (total / used).copyto(copy)
    return used
