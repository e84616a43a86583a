"""``gluon-resnetv2 plot RUN_DIR [RUN_DIR ...] -o fig.png``: the paper's Figure 1 from training runs.

Argument parsing only; the drawing is :func:`gluon_resnetv2.plot.plot_runs` (Figure 1: dashed training
loss on the left axis, solid test error in % on the right, one colour per run).
"""

from ..fileio import staged
from ..validate import ListOf


def add_arguments(parser):
    """Register the ``plot`` options on ``parser`` (shared by the CLI and ``scripts/plot_curves.py``)."""
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="training run directories (each holding log.csv and config.json)"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FIG",
        help="output file; the format follows the extension: .png, .pdf or .svg",
    )
    parser.add_argument(
        "--labels",
        type=ListOf(str, what="label"),
        default=None,
        metavar="A,B,...",
        help="comma-separated legend labels, one per run (default: model and variant from "
        "config.json, else the directory name)",
    )
    parser.add_argument("--title", default=None, help="figure title")
    parser.set_defaults(func=run)
    return parser


def add_parser(subparsers):
    """Register ``plot`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "plot",
        help="plot training curves (paper Figure 1)",
        description="Training curves as in the paper's Figure 1: x = iterations, dashed = training loss "
        "(left axis), solid = test error % (right axis), one colour per run. Works on runs "
        "that are still going.",
    )
    return add_arguments(parser)


def parse_labels(text):
    """``"A,B"`` -> ``["A", "B"]`` (a list given stays as it is); None stays None."""
    if text is None or isinstance(text, list):
        return text
    return ListOf(str, what="label")(text)


def run(args):
    """Draw the figure the parsed ``args`` describe; returns 0.  The figure is drawn into a staging file and
    moved into place whole, so Ctrl-C or an error while matplotlib writes it leaves an earlier figure as it
    was (:func:`gluon_resnetv2.fileio.staged`)."""
    from ..plot import output_format, plot_runs  # matplotlib: only plotting pays its start-up (~0.3 s)

    output_format(args.output)  # an unsupported extension is refused before anything is drawn
    with staged([args.output], what=args.output) as stage:
        plot_runs(args.run_dirs, stage.path(args.output), labels=parse_labels(args.labels), title=args.title)
    print(f"wrote {args.output}")
    return 0
