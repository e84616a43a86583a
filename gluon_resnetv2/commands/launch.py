"""``gluon-resnetv2 launch -n WORKERS -s SERVERS [--hosts FILE | --slurm] -- <train command>``: start a
parameter-server job (scheduler, servers, workers) with :func:`gluon_resnetv2.train.launcher.launch`."""

import argparse
import shlex
import sys

from ..train.launcher import DEFAULT_CONNECT_TIMEOUT, launch, read_hosts
from ..validate import port, positive_float, positive_int


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "launch",
        help="run a training command on several workers (dist_sync kvstore)",
        description="Start MXNet's scheduler, SERVERS servers and WORKERS workers running COMMAND, on localhost, "
        "over ssh (--hosts) or with srun inside a Slurm allocation (--slurm), and stop them all when "
        "the workers finish, one fails or --timeout passes. Each worker trains on its shard of every "
        "epoch with BATCH/WORKERS images per iteration; only rank 0 writes OUT/log.csv, config.json, "
        "status.json and the checkpoints, and every worker writes its final weights to "
        "OUT/workers/rank<r>.params. Example: gluon-resnetv2 launch -n 2 -s 1 -- "
        "gluon-resnetv2 train --model cifar_resnet20_v2 --dataset cifar10 --kvstore dist_sync "
        "--out runs/dist",
    )
    parser.add_argument("-n", "--num-workers", type=positive_int, required=True, help="number of workers")
    parser.add_argument("-s", "--num-servers", type=positive_int, default=1, help="number of servers (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--hosts",
        default=None,
        metavar="FILE",
        help="host file for an ssh launch, one 'host[:ssh-port] [slots=N]' per line (N: workers "
        "placed there before the next host, default 1); default: all on localhost",
    )
    where.add_argument(
        "--slurm",
        action="store_true",
        help="inside salloc/sbatch: start every process with srun on the allocation's nodes",
    )
    parser.add_argument(
        "--port", type=port, default=None, help="scheduler port (default: a free one locally, 9091 with --hosts)"
    )
    parser.add_argument(
        "--ssh-args",
        default="",
        metavar='"ARGS"',
        help='extra ssh options, written with =: --ssh-args="-i KEY -o UserKnownHostsFile=FILE"',
    )
    parser.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="give up on a host that does not answer ssh within SECONDS (default 10)",
    )
    parser.add_argument(
        "--interface",
        default=None,
        metavar="NAME",
        help="network interface for the job's traffic (DMLC_INTERFACE); default: the address "
        "each host name resolves to",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=positive_int,
        default=None,
        metavar="K",
        help="give every worker its own K GPUs: on localhost and over ssh the j-th worker on a host gets "
        "GPUs j*K..j*K+K-1 of it through CUDA_VISIBLE_DEVICES (of the launcher's CUDA_VISIBLE_DEVICES on "
        "localhost); with --slurm a non-overlapping step with --gres=gpu:K. The worker's --gpus counts from 0 "
        "within them (added to a train command that has none). Without it, several workers on one host with "
        "--gpus are refused: they would train on the same GPUs",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop the whole job after SECONDS (exit status 124)",
    )
    # not dest="command": that is the sub-command's name, which error messages show
    parser.add_argument(
        "worker_command", metavar="command", nargs=argparse.REMAINDER, help="-- then the worker command"
    )
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
    hosts = read_hosts(args.hosts) if args.hosts else None
    command = worker_command(args.worker_command)
    try:
        return launch(
            command,
            args.num_workers,
            args.num_servers,
            hosts=hosts,
            port=args.port,
            timeout=args.timeout,
            ssh_args=shlex.split(args.ssh_args),
            connect_timeout=args.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
            interface=args.interface,
            slurm=args.slurm,
            gpus_per_worker=args.gpus_per_worker,
        )
    except KeyboardInterrupt:
        print("gluon-resnetv2 launch: interrupted; all processes stopped", file=sys.stderr)
        return 130
