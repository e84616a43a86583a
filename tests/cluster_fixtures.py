"""Real daemons for the cluster tests, on loopback only, in a temporary directory, stopped afterwards.

* :func:`start_sshd`: OpenSSH's ``sshd -D`` on a free 127.0.0.1 port with a throw-away host key, and a
  throw-away user key that it accepts; returns the ``ssh`` options a client needs.
* :func:`start_slurm`: ``munged`` (a generated key, its socket in the directory), then ``slurmctld -D`` and
  ``slurmd -D`` of a one-node cluster (node ``localhost`` = 127.0.0.1, 2 CPUs, no cgroups, no accounting)
  from a generated ``slurm.conf``; clients find it through ``SLURM_CONF``.

Each returns an object whose ``stop()`` ends the daemons it started (by their process handles).  The
packages come from ``make test`` (Makefile target ``cluster-packages``); when a daemon cannot start the
test fails with the reason (in CI and as root) or is skipped (not root, outside CI).
"""

import os
import shlex
import socket
import stat
import subprocess
import time

import pytest

from gluon_resnetv2.train.launcher import free_port

SSHD = "/usr/sbin/sshd"
SLURM_DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")


def unavailable(reason):
    """Skip only outside CI and when not root (nobody can start the daemons then); otherwise fail."""
    if os.environ.get("CI") != "true" and os.geteuid() != 0:
        pytest.skip(f"{reason} (not root; CI runs these as root)")
    pytest.fail(f"cluster test set-up: {reason}", pytrace=False)


def _tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def _wait(predicate, seconds, what, logs=()):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    details = "\n".join(f"--- {path}:\n{_tail(path)}" for path in logs)
    raise RuntimeError(f"{what} within {seconds} s\n{details}")


class Daemons:
    """Processes started here, stopped in reverse order by :meth:`stop`."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.procs = []

    def start(self, argv, log_name, env=None):
        log = open(os.path.join(self.directory, log_name), "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        self.procs = []


def _port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_sshd(directory):
    """sshd on 127.0.0.1; returns :class:`Daemons` with ``port``, ``ssh_args`` (a list) and ``log``."""
    if not os.path.exists(SSHD):
        unavailable(f"{SSHD} is missing: install openssh-server (make test does)")
    d = str(directory)
    for key in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, key)], check=True, timeout=30
        )
    with open(os.path.join(d, "user_key.pub")) as src, open(os.path.join(d, "authorized_keys"), "w") as dst:
        dst.write(src.read())
    port = free_port()
    config = os.path.join(d, "sshd_config")
    with open(config, "w") as handle:
        handle.write(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {d}/host_key",
                    f"PidFile {d}/sshd.pid",
                    f"AuthorizedKeysFile {d}/authorized_keys",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    daemons = Daemons(d)
    proc = daemons.start([SSHD, "-D", "-e", "-f", config], "sshd.log")
    try:
        _wait(
            lambda: proc.poll() is not None or _port_open(port),
            15,
            "sshd did not listen",
            [os.path.join(d, "sshd.log")],
        )
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with status {proc.returncode}:\n{_tail(os.path.join(d, 'sshd.log'))}")
    except RuntimeError as err:
        daemons.stop()
        unavailable(str(err))
    daemons.port = port
    daemons.log = os.path.join(d, "sshd.log")
    daemons.ssh_args = [
        "-F",
        "/dev/null",
        "-i",
        f"{d}/user_key",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={d}/known_hosts",
    ]
    daemons.ssh_args_text = " ".join(shlex.quote(a) for a in daemons.ssh_args)
    return daemons


def slurm_conf(d, ctld_port, slurmd_port, gpus=0):
    """A one-node ``slurm.conf``: everything in ``d``, loopback only, 2 CPUs, no cgroups or accounting;
    ``gpus``: that many fake GPUs as GRES (plain files in ``d`` stand for the device files)."""
    host = socket.gethostname().split(".")[0]
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    return "\n".join(
        [
            "ClusterName=gr2test",
            *(["GresTypes=gpu"] if gpus else []),
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={d}/munge/socket",
            "CredType=cred/munge",
            f"StateSaveLocation={d}/ctld",
            f"SlurmdSpoolDir={d}/slurmd",
            f"SlurmctldPidFile={d}/slurmctld.pid",
            f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmctldLogFile={d}/slurmctld.log",
            f"SlurmdLogFile={d}/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/builtin",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",
            "MinJobAge=600",
            "InactiveLimit=0",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs=2{gres} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def start_slurm(directory, gpus=0):
    """munged + slurmctld + slurmd; returns :class:`Daemons` with ``env_extra`` (``SLURM_CONF``, for clients).
    ``gpus``: fake GPUs of the node (GRES ``gpu``; Slurm sets each step's ``CUDA_VISIBLE_DEVICES``)."""
    missing = [p for p in SLURM_DAEMONS if not os.path.exists(p)]
    if missing:
        unavailable(f"{', '.join(missing)} missing: install slurmctld, slurmd, slurm-client and munge (make test does)")
    if os.geteuid() != 0:
        unavailable("slurmd must run as root")
    d = str(directory)
    for sub in ("munge", "ctld", "slurmd"):
        os.makedirs(os.path.join(d, sub), mode=0o700, exist_ok=True)
    key = os.path.join(d, "munge", "munge.key")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(os.urandom(1024))
    conf = os.path.join(d, "slurm.conf")
    with open(conf, "w") as handle:
        handle.write(slurm_conf(d, free_port(), free_port(), gpus))
    if gpus:
        for i in range(gpus):  # slurmd wants character devices: /dev/null's numbers under another name
            os.mknod(os.path.join(d, f"fakegpu{i}"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        with open(os.path.join(d, "gres.conf"), "w") as handle:
            handle.write(f"NodeName=localhost Name=gpu File={d}/fakegpu[0-{gpus - 1}]\n")
    env = dict(os.environ, SLURM_CONF=conf)
    daemons = Daemons(d)
    daemons.env_extra = {"SLURM_CONF": conf}
    logs = [
        os.path.join(d, name) for name in ("munged.log", "slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log")
    ]
    try:
        daemons.start(
            [
                "/usr/sbin/munged",
                "-F",
                "-f",
                f"--key-file={key}",
                f"--socket={d}/munge/socket",
                f"--pid-file={d}/munge/munged.pid",
                f"--log-file={d}/munge/munged.log",
                f"--seed-file={d}/munge/munged.seed",
            ],
            "munged.log",
        )
        _wait(lambda: os.path.exists(f"{d}/munge/socket"), 15, "munged did not create its socket", logs)
        daemons.start(["/usr/sbin/slurmctld", "-D", "-f", conf], "slurmctld.out", env)
        daemons.start(["/usr/sbin/slurmd", "-D", "-N", "localhost", "-f", conf], "slurmd.out", env)

        def idle():
            for proc in daemons.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{proc.args[0]} exited with status {proc.returncode}\n"
                        + "\n".join(f"--- {p}:\n{_tail(p)}" for p in logs)
                    )
            result = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
            return result.returncode == 0 and result.stdout.strip() == "idle"

        _wait(idle, 60, "the Slurm node did not become idle", logs)
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        daemons.stop()
        unavailable(str(err))

    def stop():
        # Cancel what is left of our jobs first, so that no job step outlives slurmd.
        result = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=30)
        ids = result.stdout.split()
        if ids:
            subprocess.run(["scancel", *ids], env=env, capture_output=True, timeout=30)
            deadline = time.time() + 20
            while (
                time.time() < deadline
                and subprocess.run(
                    ["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=30
                ).stdout.strip()
            ):
                time.sleep(0.5)
        Daemons.stop(daemons)

    daemons.stop = stop
    return daemons


def processes_with(marker):
    """``{pid: argv}`` of the processes whose command line or environment contains ``marker`` (/proc)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read()
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    environ = handle.read()
            except OSError:
                continue
            if marker.encode() in cmdline or marker.encode() in environ:
                found[int(entry)] = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    return found
