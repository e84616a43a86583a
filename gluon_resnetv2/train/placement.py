"""Where the processes of a launched job run: hosts, their worker slots, and each worker's own GPUs.

Hosts: a host file lists ``host[:ssh-port] [slots=N]`` per line; :func:`place_workers` fills the first host's
slots, then the next host's, round and round.

GPUs: a worker's ``--gpus 0`` means the first GPU *it sees*.  Several workers on one host given the same
command would therefore all train on the same GPU, so :func:`check_gpu_sharing` refuses that, and with
``--gpus-per-worker K`` :func:`worker_gpu_sets` gives the j-th worker on a host that host's GPUs
``j*K ... j*K+K-1`` through ``CUDA_VISIBLE_DEVICES`` (taken from the launcher's own ``CUDA_VISIBLE_DEVICES``
on localhost when it is set), and :func:`with_gpus` makes the worker's ``--gpus`` count from 0 within them:
the same scheme as Slurm's ``--gres=gpu:K`` per job step (:mod:`.slurm`).
"""

import collections
import os
import socket

Host = collections.namedtuple("Host", "name port slots")
GPUS_FLAG = "--gpus"
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"


def parse_host(text, where="host"):
    """A :class:`Host` from ``host[:port] [slots=N]`` (the port is ssh's; slots: workers placed there)."""
    fields = text.split()
    name, port, slots = fields[0], None, 1
    if name.count(":") == 1:
        name, port_text = name.split(":")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{where}: bad port in {fields[0]!r}; expected host[:port] with port 1-65535")
        port = int(port_text)
    for field in fields[1:]:
        key, _, value = field.partition("=")
        if key != "slots" or not value.isdigit() or int(value) < 1:
            raise ValueError(f"{where}: cannot read {field!r}; expected 'host[:port] [slots=N]' with N >= 1")
        slots = int(value)
    if not name:
        raise ValueError(f"{where}: no host name in {text!r}")
    return Host(name, port, slots)


def read_hosts(path):
    """The :class:`Host` list of a host file: ``host[:port] [slots=N]`` per line (``port``: ssh's, default
    ssh's own; ``slots``: workers placed on the host before the next one, default 1); blank lines and ``#``
    comments are ignored."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"host file not found: {path}")
    hosts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                hosts.append(parse_host(line, f"{path}:{number}"))
    if not hosts:
        raise ValueError(f"host file {path} lists no hosts")
    return hosts


def address(host):
    """The IPv4 address of ``host`` as seen from here (the name itself when it does not resolve)."""
    name = host.rsplit("@", 1)[-1]
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


def place_workers(hosts, num_workers):
    """Host of each worker: the first host's slots are filled, then the next host's, round and round."""
    slots = [h for h in hosts for _ in range(h.slots)]
    return [slots[i % len(slots)] for i in range(num_workers)]


def host_text(host):
    """``node-a:2222`` for a :class:`Host`, the node name for a Slurm node, '' for localhost."""
    if host is None:
        return ""
    if isinstance(host, Host):
        return host.name + (f":{host.port}" if host.port else "")
    return str(host)


# --------------------------------------------------------------------------------------------- GPUs


def command_gpus(command):
    """The ``--gpus`` value of a worker command (``--gpus 0,1`` or ``--gpus=0,1``), or None."""
    for i, arg in enumerate(command):
        if arg == GPUS_FLAG:
            return command[i + 1] if i + 1 < len(command) else ""
        if arg.startswith(GPUS_FLAG + "="):
            return arg.split("=", 1)[1]
    return None


def with_gpus(command, gpus_per_worker, where="each worker"):
    """``command`` with ``--gpus 0..K-1`` when it is a train command without ``--gpus``; refuses indices
    beyond the K GPUs a worker sees (numbered from 0)."""
    command = list(command)
    listed = command_gpus(command)
    if listed is not None:
        bad = [g for g in listed.split(",") if g.strip().isdigit() and int(g) >= gpus_per_worker]
        if bad:
            raise ValueError(
                f"the worker command's --gpus {listed} names GPU {bad[0]}, but {where} gets "
                f"{gpus_per_worker} (--gpus-per-worker), numbered from 0"
            )
    elif "train" in command:
        command += [GPUS_FLAG, ",".join(str(i) for i in range(gpus_per_worker))]
    return command


def check_gpu_sharing(command, worker_hosts):
    """ValueError when several workers on one host would train on the same ``--gpus`` (``worker_hosts``: the
    host of each worker, None for localhost)."""
    gpus = command_gpus(command)
    if gpus is None:
        return
    per_host = collections.Counter(worker_hosts)
    host, count = per_host.most_common(1)[0]
    if count > 1:
        raise ValueError(
            f"{count} workers on {host_text(host) or 'localhost'} would all train on --gpus {gpus}: give launch "
            "--gpus-per-worker K (each worker then sees only its own K GPUs through CUDA_VISIBLE_DEVICES and its "
            "--gpus counts from 0)"
        )


def worker_gpu_sets(worker_hosts, gpus_per_worker, visible=None):
    """``CUDA_VISIBLE_DEVICES`` of each worker: the j-th worker on a host gets GPUs ``j*K ... j*K+K-1`` of
    that host, or those entries of ``visible`` (the launcher's ``CUDA_VISIBLE_DEVICES`` list, localhost)."""
    k = int(gpus_per_worker)
    if k < 1:
        raise ValueError(f"--gpus-per-worker must be at least 1, got {gpus_per_worker}")
    seen = collections.Counter()
    sets = []
    for host in worker_hosts:
        j = seen[host]
        seen[host] += 1
        ids = [str(i) for i in range(j * k, (j + 1) * k)]
        if visible is not None:
            if (j + 1) * k > len(visible):
                raise ValueError(
                    f"--gpus-per-worker {k}: worker {j} on {host_text(host) or 'localhost'} needs the GPUs "
                    f"{j * k}-{(j + 1) * k - 1} of {VISIBLE_ENV}={','.join(visible)}, which lists {len(visible)}"
                )
            ids = visible[j * k : (j + 1) * k]
        sets.append(",".join(ids))
    return sets


def visible_devices(env):
    """The launcher's ``CUDA_VISIBLE_DEVICES`` as a list, or None when unset."""
    text = env.get(VISIBLE_ENV)
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]
