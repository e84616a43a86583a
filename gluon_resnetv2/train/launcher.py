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
``hosts`` (one host name per line, ``#`` comments allowed) the scheduler runs on the first host and the
servers and workers are spread round-robin over the hosts through ``ssh`` (password-less ssh, the same
Python environment and working directory on every host, and a shared output directory are assumed).
"""
import collections
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

ProcessSpec = collections.namedtuple("ProcessSpec", "role host argv env")

#: The program a scheduler or server runs locally: importing mxnet starts the role.
SERVER_PROGRAM = "import gluon_resnetv2._compat as c; c.import_mxnet()"
DEFAULT_PORT = 9091


def free_port(host="127.0.0.1"):
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def read_hosts(path):
    """Host names from a host file (one per line; blank lines and ``#`` comments ignored)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"host file not found: {path}")
    hosts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if line:
                hosts.append(line.split()[0])
    if not hosts:
        raise ValueError(f"host file {path} lists no hosts")
    return hosts


def plan(command, num_workers, num_servers, hosts=None, port=None, python=None, cwd=None, interface=None):
    """The processes of a job as :class:`ProcessSpec` s (scheduler first, then servers, then workers).

    ``command`` is the worker's argv (a list).  Local jobs run servers with ``python -c`` importing mxnet;
    ssh jobs run ``command`` itself for every role (it imports mxnet, which starts the role).
    """
    if not command:
        raise ValueError("launch needs a command after --, e.g. -- gluon-resnetv2 train --kvstore dist_sync ...")
    if num_workers < 1:
        raise ValueError(f"-n/--num-workers must be at least 1, got {num_workers}")
    if num_servers < 1:
        raise ValueError(f"-s/--num-servers must be at least 1, got {num_servers}")
    python = python or sys.executable
    base = {"DMLC_NUM_WORKER": str(num_workers), "DMLC_NUM_SERVER": str(num_servers)}
    specs = []
    if not hosts:
        root, root_port = "127.0.0.1", port or free_port()
        base.update(DMLC_PS_ROOT_URI=root, DMLC_PS_ROOT_PORT=str(root_port), DMLC_NODE_HOST="127.0.0.1")
        server_argv = [python, "-c", SERVER_PROGRAM]
        specs.append(ProcessSpec("scheduler", None, server_argv, dict(base, DMLC_ROLE="scheduler")))
        specs += [ProcessSpec("server", None, server_argv, dict(base, DMLC_ROLE="server"))
                  for _ in range(num_servers)]
        specs += [ProcessSpec("worker", None, list(command), dict(base, DMLC_ROLE="worker"))
                  for _ in range(num_workers)]
        return specs
    root, root_port = hosts[0], port or DEFAULT_PORT
    base.update(DMLC_PS_ROOT_URI=root, DMLC_PS_ROOT_PORT=str(root_port))
    if interface:
        base["DMLC_INTERFACE"] = interface
    cwd = cwd or os.getcwd()

    def remote(role, host):
        env = dict(base, DMLC_ROLE=role)
        exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(env.items()))
        script = f"cd {shlex.quote(cwd)} && env {exports} {' '.join(shlex.quote(a) for a in command)}"
        return ProcessSpec(role, host, ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", host, script],
                           env)

    specs.append(remote("scheduler", hosts[0]))
    specs += [remote("server", hosts[i % len(hosts)]) for i in range(num_servers)]
    specs += [remote("worker", hosts[i % len(hosts)]) for i in range(num_workers)]
    return specs


def _stop(procs, grace=5.0):
    """SIGTERM every running process group, then SIGKILL what is left after ``grace`` seconds."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.time() + grace
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for proc in running:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def launch(command, num_workers, num_servers=1, hosts=None, port=None, timeout=None, server_grace=10.0,
           env=None, verbose=True, stdout=None, stderr=None):
    """Run a parameter-server job and return the exit status of the workers (0 when all succeed).

    Returns the first non-zero worker status (the others are then stopped), 124 when ``timeout`` seconds
    pass (everything is stopped), or 0.  Every process started is stopped before this returns, also on
    KeyboardInterrupt.
    """
    specs = plan(command, num_workers, num_servers, hosts=hosts, port=port)
    if not hosts and shutil.which(command[0]) is None:
        raise FileNotFoundError(f"launch: the worker command {command[0]!r} is not a program found on PATH")
    base_env = dict(os.environ if env is None else env)
    procs, roles = [], []
    say = (lambda text: print(f"gluon-resnetv2 launch: {text}", file=sys.stderr, flush=True)) if verbose \
        else (lambda text: None)
    started = time.time()
    previous = _install_sigterm()
    try:
        for spec in specs:
            proc_env = dict(base_env, **spec.env) if spec.host is None else base_env
            procs.append(subprocess.Popen(spec.argv, env=proc_env, start_new_session=True,
                                          stdout=stdout, stderr=stderr))
            roles.append(spec.role)
        where = "localhost" if not hosts else f"{len(hosts)} hosts"
        say(f"started scheduler, {num_servers} server(s) and {num_workers} worker(s) on {where} "
            f"(DMLC_PS_ROOT_PORT={specs[0].env['DMLC_PS_ROOT_PORT']})")
        workers = [p for p, r in zip(procs, roles) if r == "worker"]
        others = [p for p, r in zip(procs, roles) if r != "worker"]
        while True:
            codes = [w.poll() for w in workers]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                say(f"a worker exited with status {failed[0]}; stopping the job")
                return failed[0]
            if all(c == 0 for c in codes):
                break
            dead = [p.poll() for p in others if p.poll() not in (None, 0)]
            if dead:
                say(f"a server or the scheduler exited with status {dead[0]}; stopping the job")
                return dead[0]
            if timeout is not None and time.time() - started > timeout:
                say(f"timed out after {timeout:g} s; stopping the job")
                return 124
            time.sleep(0.1)
        # Workers are done: the servers and the scheduler normally exit by themselves.
        deadline = time.time() + server_grace
        while any(p.poll() is None for p in others) and time.time() < deadline:
            time.sleep(0.1)
        return 0
    finally:
        _stop(procs)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _install_sigterm():
    """Turn SIGTERM into SystemExit so that a terminated launcher still stops its processes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)
