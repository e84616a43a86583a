"""``gluon-resnetv2 check``: what this MXNet can do here, and whether each device computes what the CPU does.

The report is the first thing to paste into a bug report: the MXNet build (version, distribution, its
CUDA/cuDNN/NCCL features from ``mx.runtime.Features``), the CUDA architectures it has kernels for, NVRTC and
driver versions, the CUDA libraries loaded and from where, every visible GPU with whether this build can
run on it (:func:`~gluon_resnetv2.train.preflight.check_gpu_support`) and whether MXNet's runtime fusion
can (:func:`~gluon_resnetv2.train.preflight.fusion_problem`), and the environment knobs.

Then the devices: one SGD step (forward, backward, update; momentum 0.9, weight decay 1e-4 as the paper's
Sec. 4) of a small pre-activation ResNet (Fig. 4(e) units, hybridized, so that a GPU also runs MXNet's
fused kernels) in float32 on each device, from the same weights and batch, compared with the same step on
the CPU: the logits, the loss and every updated weight must agree within :data:`RTOL` of the CPU value's
largest magnitude (cuDNN may use TF32 tensor cores for float32 convolutions on Ampere and newer GPUs: a
10-bit mantissa).  Last, a few timed steps on all the devices together (the batch split over them, gradients
summed by the ``device`` store).  Any failed check makes the exit status 1.
"""

import os

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from . import cuda_libs
from .bench import timing
from .nets.cifar import cifar_resnet
from .train import TrainConfig, preflight
from .train.steps import forward_backward, make_trainer

#: A check passes when max|device - cpu| <= RTOL * max|cpu| for each compared array.
RTOL = 1e-3
#: The network of the check: a CIFAR ResNet of this depth with basic units, on 3 x SIDE x SIDE inputs.
DEPTH, SIDE, CLASSES = 8, 16, 10
#: The step's optimizer, as the training loop makes it (:func:`~.train.steps.make_trainer`): the paper's SGD.
STEP_CONFIG = TrainConfig(lr=0.1, momentum=0.9, wd=1e-4, optimizer="sgd")
ENV_PREFIXES = ("MXNET_", "OMP_", "KMP_", "NCCL_", "GLUON_RESNETV2_")
ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "LD_PRELOAD")
FEATURES = ("CUDA", "CUDNN", "NCCL", "CUDA_RTC", "TENSORRT", "MKLDNN", "OPENMP", "BLAS_OPEN", "DIST_KVSTORE")


def _version(pair):
    return f"{pair[0]}.{pair[1]}" if pair else "not found"


def build_report():
    """Lines about the MXNet build, its CUDA side and the GPUs; and the visible GPUs with the build info."""
    features = mx.runtime.Features()
    enabled = preflight.cuda_enabled()
    version, variant = preflight.installed_mxnet_variant()
    archs, ptx = preflight.build_cuda_archs()
    nvrtc, driver = preflight.nvrtc_version(), preflight.driver_cuda_version()
    lines = [
        "MXNet",
        f"  version      {mx.__version__} (distribution mxnet{'-' + variant if variant else ''} {version})",
        "  features     " + ", ".join(f"{name} {'yes' if features.is_enabled(name) else 'no'}" for name in FEATURES),
    ]
    if enabled:
        source = "GLUON_RESNETV2_CUDA_ARCHS" if os.environ.get(preflight.ARCHS_ENV) else "known for this wheel"
        arch_text = ", ".join(preflight.sm(a) for a in archs) + f" ({source})" if archs else "unknown (a source build?)"
        lines += [
            f"  CUDA archs   {arch_text}" + (f"; PTX for {', '.join(preflight.sm(a) for a in ptx)}" if ptx else ""),
            f"  NVRTC        {_version(nvrtc)}",
            f"  driver       CUDA {_version(driver)}",
        ]
        loaded = cuda_libs.loaded_libraries()
        for name in list(cuda_libs.WHEEL_DIRS) + [cuda_libs.DRIVER_LIBRARY]:
            if name in loaded:
                lines.append(f"  library      {name} -> {loaded[name]}")
        dirs = cuda_libs.library_dirs()
        if dirs:
            lines.append(f"  plain python -c 'import mxnet' needs: export LD_LIBRARY_PATH={':'.join(dirs)}")
    gpus = preflight.query_gpus() if enabled else []
    lines.append("GPUs")
    if not gpus:
        lines.append("  none visible" + ("" if enabled else " (this MXNet has no CUDA)"))
    for gpu in gpus:
        problem = preflight.check_gpu_support([gpu.index], True, gpus, archs, ptx, mx.__version__)
        fusion = preflight.fusion_problem([gpu], nvrtc, driver)
        lines.append(
            f"  {gpu.index}  {gpu.name}  {preflight.sm(gpu.capability)} ({preflight.architecture_name(gpu.capability)})"
            f"  {'can run' if problem is None else 'CANNOT RUN'}; fusion {'ok' if fusion is None else 'fails'}"
        )
        for text in filter(None, (problem, fusion and "fusion: " + fusion)):
            lines.append(f"     {text}")
    knobs = sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES)
    lines.append("Environment")
    lines += [f"  {k}={v}" for k, v in knobs] or ["  (no MXNET_*, OMP_*, CUDA_VISIBLE_DEVICES ... set)"]
    return lines, gpus, (enabled, archs, ptx, nvrtc, driver)


def preflight_devices(gpus_requested, gpus, build):
    """The preflight of ``--gpus`` as report lines, whether it passed, and the fusion note (if any)."""
    enabled, archs, ptx, nvrtc, driver = build
    message = preflight.check_gpu_support(gpus_requested, enabled, gpus, archs, ptx, mx.__version__)
    if message:
        return [f"  FAIL preflight: {message}"], False
    used = [g for g in gpus if g.index in gpus_requested]
    note = preflight.configure_fusion(used, nvrtc=nvrtc, driver=driver)
    return [f"  preflight ok for GPU {', '.join(map(str, gpus_requested))}"] + ([f"  {note}"] if note else []), True


# --------------------------------------------------------------------------------------------- numerics


def _batch(batch_size, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((batch_size, 3, SIDE, SIDE)).astype(np.float32)
    return data, rng.integers(0, CLASSES, batch_size).astype(np.float32)


def make_net(ctx, weights=None):
    """The check's network on ``ctx`` (``ctx`` may be a list), hybridized; ``weights``: arrays in parameter order."""
    net = cifar_resnet(DEPTH, "basic", classes=CLASSES)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=ctx)
    net(mx.nd.zeros((1, 3, SIDE, SIDE), ctx=ctx[0] if isinstance(ctx, list) else ctx))
    if weights is not None:
        for param, value in zip(net.collect_params().values(), weights, strict=True):
            param.set_data(mx.nd.array(value))
    net.hybridize(static_alloc=True)
    return net


def sgd_step(ctx, weights, data, label):
    """One SGD step on ``ctx`` from ``weights``: ``{"logits", "loss", "weights"}`` as numpy arrays."""
    net = make_net(ctx, weights)
    trainer = make_trainer(net.collect_params(), STEP_CONFIG)
    x, y = mx.nd.array(data, ctx=ctx), mx.nd.array(label, ctx=ctx)
    with autograd.record():
        logits = net(x)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(logits, y)
    loss.backward()
    trainer.step(len(data))
    return {
        "logits": logits.asnumpy(),
        "loss": loss.asnumpy(),
        "weights": [p.data(ctx).asnumpy() for p in net.collect_params().values()],
    }


def relative_difference(result, reference):
    """The largest max|a - b| / max|b| over the logits, the loss and the updated weights."""
    pairs = [(result["logits"], reference["logits"]), (result["loss"], reference["loss"])]
    pairs += list(zip(result["weights"], reference["weights"], strict=True))
    return max(float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-12)) for a, b in pairs)


def check_devices(contexts, batch_size=8):
    """Report lines and whether every context's SGD step matches the CPU's within :data:`RTOL`."""
    weights = [p.data().asnumpy() for p in make_net(mx.cpu()).collect_params().values()]
    data, label = _batch(batch_size)
    reference = sgd_step(mx.cpu(), weights, data, label)
    lines, ok = [], True
    for ctx in contexts:
        try:
            diff = relative_difference(sgd_step(ctx, weights, data, label), reference)
        except mx.base.MXNetError as err:
            first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            lines.append(f"  FAIL {ctx}: the step raised: {first}")
            ok = False
            continue
        passed = diff <= RTOL
        ok &= passed
        lines.append(
            f"  {'ok  ' if passed else 'FAIL'} {ctx}: forward/backward/update vs cpu: max relative difference "
            f"{diff:.2e} ({'<=' if passed else '>'} {RTOL:g}, float32)"
        )
    return lines, ok


def time_steps(contexts, steps=5, batch_size=8):
    """``(seconds per step, images per second)`` of ``steps`` training steps on all ``contexts`` together: the
    training loop's own step (:func:`~.train.steps.forward_backward` splitting the batch over the devices,
    :func:`~.train.steps.make_trainer`, the ``device`` store summing the gradients), timed by
    :func:`~.bench.timing.time_steps` after one warm-up step that allocates and (on GPUs) compiles kernels."""
    net = make_net(list(contexts))
    trainer = make_trainer(net.collect_params(), STEP_CONFIG, kvstore="device" if len(contexts) > 1 else None)
    data, label = (mx.nd.array(a) for a in _batch(batch_size * len(contexts), seed=1))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        forward_backward(net, loss_fn, data, label, list(contexts))
        trainer.step(data.shape[0])

    rate = timing.time_steps(step, steps, warmup=1, sync=mx.nd.waitall)
    return 1.0 / rate, data.shape[0] * rate
