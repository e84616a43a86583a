"""``gluon-resnetv2 models``: the registered networks and the unit variants they accept."""

from ..nets.zoo import get_spec, list_models
from ..units import ACTIVATIONS, PROJECTIONS, SHORTCUTS


def add_parser(subparsers):
    parser = subparsers.add_parser("models", help="list registered networks and unit variants")
    parser.add_argument("--family", choices=("cifar", "imagenet"), default=None)
    parser.set_defaults(func=run)
    return parser


def run(args):
    print(f"{'name':28} {'family':9} {'depth':>5} {'branch':10} {'activation':12} paper")
    for name in list_models(args.family):
        spec = get_spec(name)
        print(f"{name:28} {spec.family:9} {spec.depth:5d} {spec.branch:10} {spec.activation:12} {spec.paper}")
    print("\nactivation (Fig. 4): " + ", ".join(f"{k} {v.figure}" for k, v in ACTIVATIONS.items()))
    print("shortcut (Fig. 2):   " + ", ".join(SHORTCUTS))
    print("projection:          " + ", ".join(PROJECTIONS))
    return 0
