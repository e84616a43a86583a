"""Start a distributed (parameter-server) job: one scheduler, S servers and N workers.

MXNet's ``dist_sync`` kvstore is ps-lite: every process reads its role from the environment
(``DMLC_ROLE`` = scheduler / server / worker, ``DMLC_PS_ROOT_URI`` and ``DMLC_PS_ROOT_PORT`` = where the
scheduler listens, ``DMLC_NUM_SERVER``, ``DMLC_NUM_WORKER``).  A process whose role is scheduler or server
turns into that role as soon as it imports mxnet and never returns; workers run the training command.

:func:`plan` decides what runs where (a pure function, tested without starting anything) and
:func:`launch` runs the plan and *always* cleans up: when a worker fails every other process is stopped,
when all workers are done the servers and the scheduler get a short grace period and are then stopped,
and ``timeout`` bounds the whole job.

On localhost (no host file) the scheduler takes a free port and every process binds to 127.0.0.1.  With
``hosts`` (:func:`read_hosts`: ``host[:ssh-port] [slots=N]`` per line) the scheduler runs on the first host,
the servers round-robin over the hosts and the workers fill each host's slots in turn, all through ``ssh``
(password-less ssh, the same Python environment and working directory on every host, and a shared output
directory are assumed).  Every process announces the address the launcher resolved for its host
(``DMLC_NODE_HOST``) unless an ``interface`` is given.  A remote command is wrapped so that it ends when its
ssh connection does, which is how :func:`launch` stops remote processes.  Inside a Slurm allocation
:mod:`.slurm` makes the same plan with ``srun``.  Several workers on one host get their own GPUs with
``gpus_per_worker`` (``CUDA_VISIBLE_DEVICES`` per worker, :mod:`.placement`).

MXNet's own launcher, ``tools/launch.py``, and the ``dmlc_tracker`` package behind it (both in the mxnet
1.9.1 wheel: ``site-packages/mxnet/tools/launch.py`` and ``site-packages/dmlc_tracker``) start the same
roles with the same ``DMLC_*`` variables, but each process from a thread through a shell
(``subprocess.call``/``check_call``): a failing worker is retried or raises in its thread while the other
processes keep running, nothing bounds the job's time, the launcher's exit status is not the workers', and
its ssh has neither ``BatchMode`` nor ``ConnectTimeout`` (an unreachable host prompts or hangs).  What this
module adds: a job ``timeout`` (exit status 124), kill-all of every process group on the first failure, on
KeyboardInterrupt and on SIGTERM, the failing worker's exit status and a one-line message naming it,
remote commands that end with their ssh connection, ssh in ``BatchMode`` with a connect timeout, and Slurm
job steps (:mod:`.slurm`).  It is not built on ``dmlc_tracker`` because each of these would have to wrap
its threads from outside.
"""

import collections
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from .. import cpu
from .. import procs as procs_pool
from .placement import (  # noqa: F401  (Host, read_hosts ... stay importable from here)
    VISIBLE_ENV,
    Host,
    address,
    check_gpu_sharing,
    host_text,
    parse_host,
    place_workers,
    read_hosts,
    visible_devices,
    with_gpus,
    worker_gpu_sets,
)

#: ``via``: how the process is started ('local', 'ssh' or 'srun'); ``index``: its number within its role.
#: ``env`` holds the job's variables; they are set on the local process except for ssh, where ``argv``
#: carries them.
ProcessSpec = collections.namedtuple("ProcessSpec", "role host argv env via index", defaults=("local", 0))

#: The program a scheduler or server runs locally: importing mxnet starts the role.
SERVER_PROGRAM = "import gluon_resnetv2._compat; import mxnet"
DEFAULT_PORT = 9091
DEFAULT_CONNECT_TIMEOUT = 10.0
#: ssh's exit status when it could not connect or authenticate (a remote command's own status otherwise).
SSH_FAILED = 255
#: Variables that travel to remote processes (ssh does not forward the environment).
FORWARDED_ENV = ("PYTHONPATH", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
FORWARDED_PREFIXES = ("MXNET_", "GLUON_RESNETV2_")
#: Set on every worker: its number in launch order (the kvstore's rank is assigned by the scheduler).
WORKER_INDEX_ENV = "GLUON_RESNETV2_WORKER_INDEX"


def free_port(host="127.0.0.1"):
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def forwarded_env(env):
    """The variables of ``env`` that remote processes get (:data:`FORWARDED_ENV`, :data:`FORWARDED_PREFIXES`)."""
    return {k: v for k, v in env.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIXES)}


def remote_script(cwd, env, argv):
    """The shell command ssh runs: ``argv`` in ``cwd`` with ``env``, ended (SIGTERM) as soon as the ssh
    connection closes.  Without a terminal the remote side gets no SIGHUP when the client dies, so a
    watcher reads the connection's stdin (kept on fd 3: a background job's stdin is /dev/null) and
    stops the command at end of file."""
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(env.items()))
    command = " ".join(shlex.quote(a) for a in argv)
    return (
        f"cd {shlex.quote(cwd)} || exit 1; exec 3<&0; env {exports} {command} & child=$!; "
        "trap 'kill -TERM $child 2>/dev/null' TERM HUP; "
        "(cat <&3 >/dev/null; kill -TERM $child 2>/dev/null) & watcher=$!; "
        "wait $child; status=$?; kill $watcher 2>/dev/null; exit $status"
    )


def ssh_argv(host, script, ssh_args=(), connect_timeout=DEFAULT_CONNECT_TIMEOUT):
    """``ssh`` running ``script`` on :class:`Host` ``host`` (never prompting; ``ConnectTimeout`` bounds the
    connection and the greeting, so an unreachable host fails instead of hanging).  ``ssh_args`` come
    first: for ssh the first value of an option wins."""
    argv = [
        "ssh",
        *ssh_args,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        f"ConnectTimeout={max(1, int(math.ceil(connect_timeout)))}",
    ]
    if host.port:
        argv += ["-p", str(host.port)]
    return argv + [host.name, script]


def _as_hosts(hosts):
    return [h if isinstance(h, Host) else parse_host(h) for h in hosts]


def plan(
    command,
    num_workers,
    num_servers,
    hosts=None,
    port=None,
    python=None,
    cwd=None,
    interface=None,
    ssh_args=(),
    connect_timeout=DEFAULT_CONNECT_TIMEOUT,
    env=None,
    gpus_per_worker=None,
):
    """The processes of a job as :class:`ProcessSpec` s (scheduler first, then servers, then workers).

    ``command`` is the worker's argv (a list); the scheduler and the servers run ``python -c`` importing
    mxnet.  ``hosts``: :class:`Host` s (or ``host[:port]`` strings) for an ssh job; ``env`` (default
    ``os.environ``) gives the variables forwarded to remote processes.  ``gpus_per_worker`` K: every worker
    gets its own K GPUs of its host in ``CUDA_VISIBLE_DEVICES`` (:mod:`.placement`); without it, several
    workers on one host with a ``--gpus`` command are refused (they would share the GPUs).
    """
    check_sizes(command, num_workers, num_servers)
    env = os.environ if env is None else env
    python = python or sys.executable
    worker_hosts = place_workers(_as_hosts(hosts), num_workers) if hosts else [None] * num_workers
    if gpus_per_worker:
        gpu_sets = worker_gpu_sets(worker_hosts, gpus_per_worker, None if hosts else visible_devices(env))
        command = with_gpus(command, gpus_per_worker)
    else:
        check_gpu_sharing(command, worker_hosts)
        gpu_sets = [None] * num_workers

    def gpu_env(index):
        return {VISIBLE_ENV: gpu_sets[index]} if gpu_sets[index] is not None else {}

    base = {"DMLC_NUM_WORKER": str(num_workers), "DMLC_NUM_SERVER": str(num_servers)}
    server_argv = [python, "-c", SERVER_PROGRAM]
    if not hosts:
        root, root_port = "127.0.0.1", port or free_port()
        base.update(DMLC_PS_ROOT_URI=root, DMLC_PS_ROOT_PORT=str(root_port), DMLC_NODE_HOST="127.0.0.1")
        specs = [ProcessSpec("scheduler", None, server_argv, dict(base, DMLC_ROLE="scheduler"))]
        specs += [
            ProcessSpec("server", None, server_argv, dict(base, DMLC_ROLE="server"), index=i)
            for i in range(num_servers)
        ]
        specs += [
            ProcessSpec(
                "worker",
                None,
                list(command),
                dict(base, DMLC_ROLE="worker", **{WORKER_INDEX_ENV: str(i)}, **gpu_env(i)),
                index=i,
            )
            for i in range(num_workers)
        ]
        return specs
    hosts = _as_hosts(hosts)
    base.update(DMLC_PS_ROOT_URI=address(hosts[0].name), DMLC_PS_ROOT_PORT=str(port or DEFAULT_PORT))
    if interface:
        base["DMLC_INTERFACE"] = interface
    cwd = cwd or os.getcwd()
    forwarded = forwarded_env(env)

    def remote(role, host, argv, index=0):
        job = dict(base, DMLC_ROLE=role)
        if not interface:
            job["DMLC_NODE_HOST"] = address(host.name)
        if role == "worker":
            job[WORKER_INDEX_ENV] = str(index)
            job.update(gpu_env(index))
        script = remote_script(cwd, dict(forwarded, **job), argv)
        return ProcessSpec(role, host, ssh_argv(host, script, ssh_args, connect_timeout), job, "ssh", index)

    specs = [remote("scheduler", hosts[0], server_argv)]
    specs += [remote("server", hosts[i % len(hosts)], server_argv, i) for i in range(num_servers)]
    specs += [remote("worker", host, list(command), i) for i, host in enumerate(worker_hosts)]
    return specs


def check_sizes(command, num_workers, num_servers):
    if not command:
        raise ValueError("launch needs a command after --, e.g. -- gluon-resnetv2 train --kvstore dist_sync ...")
    if num_workers < 1:
        raise ValueError(f"-n/--num-workers must be at least 1, got {num_workers}")
    if num_servers < 1:
        raise ValueError(f"-s/--num-servers must be at least 1, got {num_servers}")


def describe(spec, num, where=True):
    """``worker 1 (of 0-1) on node-a:2222 (ssh)``: how the launcher names a process in its messages."""
    who = f"{spec.role} {spec.index} (of 0-{num - 1})" if spec.role != "scheduler" else "the scheduler"
    return who + (f" on {host_text(spec.host)} ({spec.via})" if where and spec.host is not None else "")


def launch(
    command,
    num_workers,
    num_servers=1,
    hosts=None,
    port=None,
    timeout=None,
    server_grace=10.0,
    env=None,
    verbose=True,
    stdout=None,
    stderr=None,
    ssh_args=(),
    connect_timeout=DEFAULT_CONNECT_TIMEOUT,
    interface=None,
    slurm=False,
    gpus_per_worker=None,
):
    """Run a parameter-server job and return the exit status of the workers (0 when all succeed).

    Returns the first non-zero worker status (the others are then stopped), 124 when ``timeout`` seconds
    pass (everything is stopped), or 0; a process that ends early names itself (role, index, host) in a
    one-line message.  ``slurm``: start every process with ``srun`` inside the current allocation
    (:func:`.slurm.plan`).  Every process started is stopped before this returns, also on
    KeyboardInterrupt and SIGTERM.
    """
    if command and not hosts and not slurm and shutil.which(command[0]) is None:
        raise FileNotFoundError(f"launch: the worker command {command[0]!r} is not a program found on PATH")
    base_env = dict(os.environ if env is None else env)
    shared_cores = None
    if env is None and cpu.in_use()["source"] == "physical cores":
        # OMP_NUM_THREADS is this package's default (every core), not the user's: remote processes choose
        # for their own machine, and the local workers share this one's cores instead of each taking all.
        base_env.pop("OMP_NUM_THREADS", None)
        shared_cores = cpu.in_use()["threads"]
    if slurm:
        from . import slurm as slurm_mod  # import cycle: slurm imports the launcher

        specs = slurm_mod.plan(
            command,
            num_workers,
            num_servers,
            port=port,
            interface=interface,
            gpus_per_worker=gpus_per_worker,
            env=base_env,
        )
    else:
        specs = plan(
            command,
            num_workers,
            num_servers,
            hosts=hosts,
            port=port,
            interface=interface,
            ssh_args=ssh_args,
            connect_timeout=connect_timeout,
            env=base_env,
            gpus_per_worker=gpus_per_worker,
        )
    counts = collections.Counter(s.role for s in specs)
    local_workers = sum(1 for s in specs if s.via == "local" and s.role == "worker")
    if shared_cores and local_workers:
        base_env["OMP_NUM_THREADS"] = str(max(1, shared_cores // local_workers))
    procs = []
    say = (
        (lambda text: print(f"gluon-resnetv2 launch: {text}", file=sys.stderr, flush=True))
        if verbose
        else (lambda text: None)
    )
    started = time.time()
    previous = _install_sigterm()
    try:
        for spec in specs:
            proc_env = base_env if spec.via == "ssh" else dict(base_env, **spec.env)
            # ssh's stdin stays open (never written): the remote side ends its command when it closes.
            try:
                procs.append(
                    subprocess.Popen(
                        spec.argv,
                        env=proc_env,
                        start_new_session=True,
                        stdout=stdout,
                        stderr=stderr,
                        stdin=subprocess.PIPE if spec.via == "ssh" else None,
                    )
                )
            except FileNotFoundError:
                package = {"ssh": "openssh-client", "srun": "slurm-client"}.get(spec.via)
                raise RuntimeError(
                    f"cannot start {spec.argv[0]}: not found on PATH"
                    + (f" (Debian package {package})" if package else "")
                ) from None
        where = {
            "local": "localhost",
            "ssh": f"{len(set(s.host for s in specs))} hosts over ssh",
            "srun": f"{len(set(s.host for s in specs))} Slurm node(s) with srun",
        }[specs[0].via]
        say(
            f"started the scheduler, {num_servers} server(s) and {num_workers} worker(s) on {where} "
            f"(DMLC_PS_ROOT_URI={specs[0].env['DMLC_PS_ROOT_URI']}, "
            f"DMLC_PS_ROOT_PORT={specs[0].env['DMLC_PS_ROOT_PORT']})"
        )
        # Not procs.run: a job ends when its workers do (servers and the scheduler never exit first by
        # themselves), on the first failure of any role, or at the timeout, and ssh's 255 is told apart.
        while True:
            codes = [p.poll() for p in procs]
            for spec, code in zip(specs, codes):
                if code in (None, 0):
                    continue
                if spec.via == "ssh" and code == SSH_FAILED:
                    say(
                        f"cannot reach host {host_text(spec.host)} over ssh (exit status 255 for "
                        f"{describe(spec, counts[spec.role], where=False)}; ssh's reason is above); stopping the job"
                    )
                else:
                    say(f"{describe(spec, counts[spec.role])} exited with status {code}; stopping the job")
                return code
            if all(c == 0 for s, c in zip(specs, codes) if s.role == "worker"):
                break
            if timeout is not None and time.time() - started > timeout:
                say(f"timed out after {timeout:g} s; stopping the job")
                return 124
            time.sleep(0.1)
        # Workers are done: the servers and the scheduler normally exit by themselves.
        others = [p for p, s in zip(procs, specs) if s.role != "worker"]
        deadline = time.time() + server_grace
        while any(p.poll() is None for p in others) and time.time() < deadline:
            time.sleep(0.1)
        return 0
    finally:
        procs_pool.stop(procs, grace=5.0, group=True)  # SIGTERM each process group, SIGKILL after 5 s
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _install_sigterm():
    """Turn SIGTERM into SystemExit so that a terminated launcher still stops its processes."""

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)
