"""``gluon-resnetv2 check [--gpus LIST | --cpus N]``: the doctor, to run first on a new machine and to paste
into a bug report (:mod:`gluon_resnetv2.doctor`)."""

from .. import doctor
from ..train.devices import make_contexts, parse_gpus
from ..validate import gpu_list, positive_int


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "check",
        help="report the MXNet build, GPUs and environment, and check every device against the CPU",
        description="Print the MXNet build (version, CUDA/cuDNN/NCCL features, CUDA architectures, NVRTC, driver, "
        "CUDA libraries), each visible GPU and whether this build (and its runtime fusion) can run on it, and the "
        "environment knobs; then run one float32 SGD step of a small ResNet on each device and compare it with the "
        f"CPU's (relative tolerance {doctor.RTOL:g}), and time a few steps on all of them. Exit status 1 when a "
        "check fails. Paste the output into bug reports.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpus", type=gpu_list, default=None, metavar="LIST", help="GPU indices to check, e.g. 0,1")
    where.add_argument("--cpus", type=positive_int, default=None, metavar="N", help="check N CPU contexts (default 1)")
    parser.add_argument("--steps", type=positive_int, default=5, help="timed steps (default 5)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per device and step (default 8)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    lines, gpus, build = doctor.build_report()
    print("gluon-resnetv2 check", *lines, sep="\n", flush=True)
    contexts = make_contexts(args.cpus, args.gpus)
    print(f"Devices: {', '.join(str(c) for c in contexts)}", flush=True)
    ok = True
    if args.gpus is not None:
        report, ok = doctor.preflight_devices(parse_gpus(args.gpus), gpus, build)
        print(*report, sep="\n", flush=True)
    if ok:
        report, ok = doctor.check_devices(contexts, args.batch_size)
        print(*report, sep="\n", flush=True)
    if ok:
        seconds, rate = doctor.time_steps(contexts, args.steps, args.batch_size)
        print(
            f"  timing: {args.steps} steps of cifar_resnet{doctor.DEPTH} ({args.batch_size} images per device): "
            f"{seconds * 1000:.1f} ms/step, {rate:.0f} images/s",
            flush=True,
        )
    print("result: " + ("all checks passed" if ok else "a check FAILED (see above)"))
    return 0 if ok else 1
