"""How fast does the input pipeline deliver training batches, and how does it scale with workers?
(:mod:`gluon_resnetv2.data.bench_input`)

Argument parsing only; the measurement is :func:`gluon_resnetv2.data.bench_input.run_input_bench`, which
writes ``OUT/bench_input.json`` and ``OUT/bench_input.md`` (default ``docs/results``).
"""

from ..data.bench_input import run_input_bench
from ..validate import nonneg_int, positive_int


def add_arguments(parser):
    """Register the options on ``parser`` (``scripts/bench_input.py``)."""
    parser.add_argument(
        "--num-workers",
        type=positive_int,
        nargs="+",
        default=None,
        help="worker counts (default: 1 .. the physical cores)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=128, help="in-memory sets' batch (default 128)")
    parser.add_argument("--imagenet-batch-size", type=positive_int, default=64, help="ImageNet batch (default 64)")
    parser.add_argument("--batches", type=positive_int, default=100, help="timed batches, in-memory sets (default 100)")
    parser.add_argument(
        "--imagenet-batches", type=positive_int, default=12, help="timed batches, ImageNet (default 12)"
    )
    parser.add_argument(
        "--images", type=positive_int, default=512, help="JPEGs in the ImageNet-style .rec (default 512)"
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=3, help="interleaved rounds, medians reported (default 3)"
    )
    parser.add_argument("--no-imagenet", dest="imagenet", action="store_false", help="skip the JPEG loaders")
    parser.add_argument(
        "--out", default="docs/results", help="directory of bench_input.json/.md (default docs/results; '' = none)"
    )
    parser.add_argument(
        "--overlap",
        type=nonneg_int,
        default=0,
        metavar="STEPS",
        help="also time cifar_resnet20_v2 training on synthetic CIFAR data, fed a fixed batch vs "
        "the loader, in 5 alternating rounds of STEPS steps (default: 0, skipped)",
    )
    parser.set_defaults(func=run)
    return parser


def command_line(args):
    """The command that reproduces ``args``, every option spelt out (recorded in the result file)."""
    words = ["python", "scripts/bench_input.py"]
    if args.num_workers:
        words += ["--num-workers", *map(str, args.num_workers)]
    words += [
        f"--batch-size {args.batch_size}",
        f"--imagenet-batch-size {args.imagenet_batch_size}",
        f"--batches {args.batches}",
        f"--imagenet-batches {args.imagenet_batches}",
        f"--images {args.images}",
        f"--rounds {args.rounds}",
    ]
    if not args.imagenet:
        words.append("--no-imagenet")
    return " ".join(words)


def run(args):
    run_input_bench(
        num_workers=args.num_workers,
        batch_size=args.batch_size,
        imagenet_batch=args.imagenet_batch_size,
        batches=args.batches,
        imagenet_batches=args.imagenet_batches,
        images=args.images,
        rounds=args.rounds,
        imagenet=args.imagenet,
        out=args.out or None,
        command=command_line(args),
        overlap_steps=args.overlap,
    )
    return 0
