"""Memory at depth: recomputation ("mirroring") for training very deep networks.

Training keeps every intermediate output of the forward pass for the backward pass, so memory grows
linearly with depth: ResNet-1001 at batch 64 holds about 3000 feature maps per image.  Recomputation
(Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost") keeps only some of them and
recomputes the rest during the backward pass.  Two mechanisms are offered; ``scripts/bench_memory.py``
measures both (figures in ``docs/guides/deployment.md``).

1. :func:`recompute` -- **the one that saves memory**.  The network is cut into segments of
   ``segment_size`` residual units; in training, each segment runs inside an ``autograd.Function`` that
   keeps only the segment's *input*, and its backward pass re-runs the segment under ``autograd.record``
   to get the gradients (identical to the ordinary ones: same batch statistics, same arithmetic).  Peak
   memory falls to roughly one segment's activations plus one tensor per segment boundary, for about one
   extra forward pass of time.  Works with hybridized units; the trainer uses the returned block for the
   training forward pass and keeps stepping the original network's parameters::

       from gluon_resnetv2.memory import recompute
       model = recompute(net, segment_size=6)          # or recompute(net) when GLUON_RESNETV2_MIRROR=1
       with autograd.record():
           loss = loss_fn(model(data), label)
       model.backward(loss)                            # loss.backward() + wait for the recomputation
       trainer.step(batch_size)                        # trainer built on net.collect_params()

2. :func:`enable_mirroring` -- MXNet 1.9's own backward mirroring, ``MXNET_BACKWARD_DO_MIRROR=1``, read
   when a graph is bound.  With Gluon's CachedOp (hybridized blocks) it has no measurable effect in
   1.9.1, and MXNet's symbolic executor (:class:`SymbolicTrainer`, Module API) does insert the
   recomputation nodes but, on these pre-activation networks, its memory planner ends up with the same
   footprint (the measurements: ``docs/guides/deployment.md``, "Memory at depth").  It is kept for completeness and
   for MXNet versions where it helps; ``MXNET_MEMORY_OPT`` is the
   MXNet 2.0 switch, not read by 1.9.1.

The package-wide switch is the environment variable ``GLUON_RESNETV2_MIRROR``: ``1`` (or ``true``) asks
trainers to wrap the network with :func:`recompute` (segment size ``GLUON_RESNETV2_MIRROR_SEGMENT``,
default: about sqrt(number of units)); :func:`configure_from_env` reads it.
"""

import math
import os

import mxnet as mx

from .units import ShortcutDropout, walk_blocks

MIRROR_ENV = "MXNET_BACKWARD_DO_MIRROR"
MEMORY_OPT_ENV = "MXNET_MEMORY_OPT"  # MXNet 2.0's name; not read by 1.9.1
PACKAGE_ENV = "GLUON_RESNETV2_MIRROR"  # the package's switch: trainers wrap the net with recompute()
SEGMENT_ENV = "GLUON_RESNETV2_MIRROR_SEGMENT"


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def enable_mirroring(enabled=True):
    """Switch backward mirroring on (or off) for every executor bound from now on.

    Must run before the training graph is bound (:class:`SymbolicTrainer` construction, ``simple_bind``):
    MXNet reads ``MXNET_BACKWARD_DO_MIRROR`` when it builds the backward graph, so graphs built earlier
    keep the setting they were built with.  Returns the previous state.
    """
    previous = mirroring_enabled()
    value = "1" if enabled else "0"
    os.environ[MIRROR_ENV] = value
    os.environ[MEMORY_OPT_ENV] = value
    return previous


def mirroring_enabled():
    """True when MXNet's executor mirroring is requested (``MXNET_BACKWARD_DO_MIRROR``)."""
    return _truthy(os.environ.get(MIRROR_ENV, "0"))


def recompute_requested():
    """True when ``GLUON_RESNETV2_MIRROR`` asks trainers to use :func:`recompute`."""
    return _truthy(os.environ.get(PACKAGE_ENV, "0"))


def configure_from_env(net):
    """``recompute(net)`` if ``GLUON_RESNETV2_MIRROR`` is set (segment size from
    ``GLUON_RESNETV2_MIRROR_SEGMENT``), else ``net`` itself: what a trainer calls its training forward on."""
    if not recompute_requested():
        return net
    size = os.environ.get(SEGMENT_ENV)
    return recompute(net, segment_size=int(size) if size else None)


# -- recomputation in Gluon ------------------------------------------------------------------------------


class _SegmentFunction:
    """Factory of the autograd Function that runs one segment without keeping its activations."""

    def __new__(cls, segment, params):
        autograd = mx.autograd

        class _Recompute(autograd.Function):
            def forward(self, x):
                # Function.forward runs with recording off; BatchNorm must still use batch statistics.
                with autograd.train_mode():
                    y = segment(x)
                self.save_for_backward(x)
                return y

            def backward(self, dy):
                (x,) = self.saved_tensors
                x = x.detach()
                x.attach_grad()
                # BatchNorm's running averages: MXNet 1.x does not update them in the unrecorded forward
                # above (measured: restoring them here left them at their old values), so this recorded
                # recomputation updates them once, exactly as ordinary training does (the test pins it).
                with autograd.record(train_mode=True):
                    y = segment(x)
                y.backward(dy)
                for param in params:
                    if param.grad_req != "null":
                        # Trainer.step checks the "fresh gradient" flag of the parameter arrays, which only
                        # the outer backward would set for graph variables; these were updated here.
                        for data in param.list_data():
                            data._fresh_grad = True
                return x.grad

        return _Recompute()


def _make_recompute_block():
    class RecomputeBlock(mx.gluon.Block):
        """Runs ``segments`` in order; while recording, each through a recomputing autograd Function.

        Outside ``autograd.record()`` (evaluation) the segments run normally.  Holds no parameters of
        its own: the segments' parameters are the wrapped network's.
        """

        def __init__(self, segments, params_of, **kwargs):
            super().__init__(**kwargs)
            self._segments = list(segments)
            self._params_of = params_of
            self._inputs = []  # this step's recorded inputs, one per device: see wait_for_gradients

        def forward(self, x):
            autograd = mx.autograd
            if not autograd.is_recording():
                for segment in self._segments:
                    x = segment(x)
                return x
            # The Functions are recorded only if their input is part of the graph.
            x = x.detach()
            x.attach_grad()
            self._inputs.append(x)
            for segment, params in zip(self._segments, self._params_of):
                x = _SegmentFunction(segment, params)(x)
            return x

        @staticmethod
        def backward(loss):
            """``loss.backward()``, then wait until every segment's recomputation has finished.

            MXNet runs autograd Functions' backward in its custom-operator thread, *after*
            ``loss.backward()`` has returned; the parameter gradients are written there.  A
            ``Trainer.step`` issued before they finish would update with stale gradients (and reports
            them as stale), so training code calls this instead of ``loss.backward()``.
            """
            loss.backward()
            mx.nd.waitall()

        def wait_for_gradients(self):
            """After ``autograd.backward`` of this step's forward passes: wait until every recomputation
            has run, without draining MXNet's whole engine queue (:meth:`backward`'s ``waitall``).

            The gradient of each forward's input is written by the *last* segment Function to run
            backward, which completes only after its Python ``backward`` (and those of the segments after
            it) has run and issued its parameter-gradient writes; operations issued afterwards (the
            Trainer's update) are ordered after those writes by the engine.
            """
            inputs, self._inputs = self._inputs, []
            for x in inputs:
                x.grad.wait_to_read()

    return RecomputeBlock


def recompute(net, segment_size=None, hybridize=True):
    """Wrap a :class:`~gluon_resnetv2.nets.network.ResidualNetwork` for training with recomputation.

    ``segment_size`` residual units form one segment (default ``ceil(sqrt(units))``, the classic
    sqrt(n) memory schedule); the stem, head and classifier are segments of their own.  Returns a Block
    whose ``forward`` gives the same outputs and, after ``backward``, the same gradients in ``net``'s
    parameters as ``net`` itself.  Segments are hybridized without ``static_alloc`` so that their
    buffers are released between uses (static buffers per segment would add up to more than the
    original network holds).

    Dropout shortcuts (Fig. 2(f)) are refused: the recomputed dropout mask would differ from the forward
    one.
    """

    units = net.residual_units()
    if any(isinstance(block, ShortcutDropout) for unit in units for block in walk_blocks(unit)):
        raise ValueError(
            "recompute: dropout shortcuts draw a new mask when recomputed; train this network without recomputation"
        )
    if segment_size is None:
        segment_size = max(1, math.ceil(math.sqrt(len(units))))
    segment_size = int(segment_size)
    if segment_size < 1:
        raise ValueError(f"segment_size must be >= 1, got {segment_size}")
    segments = [net.stem]
    for start in range(0, len(units), segment_size):
        seq = mx.gluon.nn.HybridSequential(prefix="")
        for unit in units[start : start + segment_size]:
            seq.add(unit)
        segments.append(seq)
    segments += [net.head, net.output]
    if hybridize:
        for segment in segments:
            segment.hybridize(static_alloc=False)
    params_of = [list(segment.collect_params().values()) for segment in segments]
    return _make_recompute_block()(segments, params_of)


# -- MXNet's executor mirroring ---------------------------------------------------------------------------


class SymbolicTrainer:
    """Train a Gluon ``HybridBlock`` through MXNet's symbolic executor, the engine that honours
    ``MXNET_BACKWARD_DO_MIRROR`` in 1.9.1 (it inserts the recomputation; see the module notes on memory).

    The network's forward graph is traced once (``net(mx.sym.var('data'))``), a softmax cross-entropy
    head is added (``SoftmaxOutput``, whose gradient is that of the mean cross-entropy with
    ``normalization='batch'``) and the graph is bound with ``simple_bind`` for a fixed ``data_shape``.
    The executor's argument and auxiliary arrays *are* the Gluon parameters' arrays (``bind`` on the same
    NDArrays), so updates made here are visible to ``net``
    immediately: ``net.save_parameters`` and ``net(x)`` need no copy.  BatchNorm running statistics are
    the executor's auxiliary states, i.e. the Gluon arrays as well.

    Parameters
    ----------
    net : HybridBlock
        Initialised (no deferred shapes left), single CPU or GPU context.
    data_shape : tuple
        ``(batch, C, H, W)``; every call must use this shape.
    optimizer, optimizer_params : as for ``gluon.Trainer``.  ``rescale_grad`` is left at 1 because the
        loss head already averages over the batch.
    ctx : Context, default the context of the network's parameters.
    mirror : bool or None
        None keeps the current environment; True/False calls :func:`enable_mirroring` before binding.
    """

    def __init__(self, net, data_shape, optimizer="sgd", optimizer_params=None, ctx=None, mirror=None):
        if mirror is not None:
            enable_mirroring(mirror)
        params = net.collect_params()
        first = next(iter(params.values()))
        self.ctx = ctx or first.list_ctx()[0]
        self.data_shape = tuple(data_shape)
        self.net = net
        data = mx.sym.var("data")
        label = mx.sym.var("softmax_label")
        logits = net(data)
        self.symbol = mx.sym.SoftmaxOutput(logits, label, normalization="batch", name="softmax")
        arg_names = self.symbol.list_arguments()
        aux_names = self.symbol.list_auxiliary_states()
        by_name = {p.name: p for p in params.values()}
        missing = [n for n in arg_names + aux_names if n not in by_name and n not in ("data", "softmax_label")]
        if missing:
            raise ValueError(
                f"SymbolicTrainer: the graph needs {missing[:3]}... that are not parameters of the "
                f"network (was it built with another prefix?)"
            )
        args, grads, reqs = {}, {}, {}
        self._trainable = []
        for name in arg_names:
            if name == "data":
                args[name] = mx.nd.zeros(self.data_shape, ctx=self.ctx)
                reqs[name] = "null"
            elif name == "softmax_label":
                args[name] = mx.nd.zeros(self.data_shape[:1], ctx=self.ctx)
                reqs[name] = "null"
            else:
                param = by_name[name]
                args[name] = param.data(self.ctx)
                reqs[name] = param.grad_req
                if param.grad_req != "null":
                    grads[name] = mx.nd.zeros(param.shape, ctx=self.ctx, dtype=param.dtype)
                    self._trainable.append(name)
        auxs = {name: by_name[name].data(self.ctx) for name in aux_names}
        # bind (not simple_bind) on the Gluon arrays: the executor then reads and writes them in place.
        self.executor = self.symbol.bind(self.ctx, args, args_grad=grads, grad_req=reqs, aux_states=auxs)
        self.optimizer = mx.optimizer.create(optimizer, **(optimizer_params or {}))
        self.updater = mx.optimizer.get_updater(self.optimizer)
        self._args, self._grads = args, grads

    def __call__(self, data, label):
        """One training step on ``(data, label)``; returns the mean cross-entropy (a Python float)."""
        if tuple(data.shape) != self.data_shape:
            raise ValueError(f"SymbolicTrainer was bound for data of shape {self.data_shape}, got {data.shape}")
        data.copyto(self._args["data"])
        label.astype("float32").copyto(self._args["softmax_label"])
        self.executor.forward(is_train=True)
        self.executor.backward()
        for index, name in enumerate(self._trainable):
            self.updater(index, self._grads[name], self._args[name])
        probs = self.executor.outputs[0]
        picked = mx.nd.pick(probs, self._args["softmax_label"], axis=1)
        return float((-mx.nd.log(mx.nd.maximum(picked, 1e-12))).mean().asscalar())

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    def set_learning_rate(self, lr):
        """Change the learning rate (for a schedule)."""
        self.optimizer.set_learning_rate(lr)
