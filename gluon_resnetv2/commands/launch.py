"""``gluon-resnetv2 launch -n WORKERS -s SERVERS [--hosts FILE] -- <train command>``: start a parameter-server
job (scheduler, servers, workers) with :func:`gluon_resnetv2.train.launcher.launch`."""
import argparse
import sys


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "launch", help="run a training command on several workers (dist_sync kvstore)",
        description="Start MXNet's scheduler, SERVERS servers and WORKERS workers running COMMAND, on localhost "
                    "or over ssh (--hosts), and stop them all when the workers finish, one fails or --timeout "
                    "passes. Each worker trains on its shard of every epoch with BATCH/WORKERS images per "
                    "iteration; only rank 0 writes OUT/log.csv, config.json, status.json and the checkpoints, "
                    "and every worker writes its final weights to OUT/workers/rank<r>.params. Example: gluon-resnetv2 launch -n 2 -s 1 -- gluon-resnetv2 train --model "
                    "cifar_resnet20_v2 --dataset cifar10 --kvstore dist_sync --out runs/dist")
    parser.add_argument("-n", "--num-workers", type=int, required=True, help="number of workers")
    parser.add_argument("-s", "--num-servers", type=int, default=1, help="number of servers (default 1)")
    parser.add_argument("--hosts", default=None, metavar="FILE",
                        help="host file (one host per line) for an ssh launch; default: all on localhost")
    parser.add_argument("--port", type=int, default=None, help="scheduler port (default: a free one locally, "
                        "9091 with --hosts)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="stop the whole job after SECONDS (exit status 124)")
    # Not "command": that name is the sub-command's (the CLI's "gluon-resnetv2 <command>" error prefix).
    parser.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="-- then the worker command")
    parser.set_defaults(func=run)
    return parser


def worker_command(command):
    """Strip the ``--`` separator; a leading ``gluon-resnetv2`` runs through this Python (no PATH needed)."""
    command = list(command)
    if command and command[0] == "--":
        command = command[1:]
    if command and command[0] == "gluon-resnetv2":
        command = [sys.executable, "-m", "gluon_resnetv2.cli"] + command[1:]
    return command


def run(args):
    from ..train.launcher import launch, read_hosts

    hosts = read_hosts(args.hosts) if args.hosts else None
    command = worker_command(args.worker_command)
    try:
        return launch(command, args.num_workers, args.num_servers, hosts=hosts, port=args.port,
                      timeout=args.timeout)
    except KeyboardInterrupt:
        print("gluon-resnetv2 launch: interrupted; all processes stopped", file=sys.stderr)
        return 130
