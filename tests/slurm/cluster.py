"""A throwaway single-node Slurm (munged + slurmctld + slurmd) for the `slurm` nox session and benchmarks/scaleout.py.

Needs Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them as root) and root (the daemons run as root,
``SlurmUser=root``). Everything lives in one folder: a munge key generated on the spot, a generated ``slurm.conf``
(``proctrack/linuxproc``, ``task/none``, ``select/cons_tres``, one node with this machine's cores and memory, one
partition), state, spool, logs. The three daemons run in the foreground as children of this process and are stopped
by their pids (never by name). Client commands (sbatch, squeue, scancel, submitit) find the cluster through
``SLURM_CONF``, which ``LocalSlurm.env()`` sets.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def missing() -> str | None:
    """Why a local Slurm cannot start here (None when it can)."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the single-node Slurm runs its daemons as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024 - 512
    return 1024


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class LocalSlurm:
    """``with LocalSlurm(folder) as slurm:`` a running one-node cluster; ``slurm.env()`` for client commands."""

    def __init__(self, folder: Path, partition: str = "berg") -> None:
        self.folder = Path(folder)
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ setup
    def _write_files(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "log", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = f / "munge" / "munge.socket"
        ctld, slurmd = _free_port(), _free_port()
        conf = f"""\
ClusterName=bergci
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={f / 'state'}
SlurmdSpoolDir={f / 'spool'}
SlurmctldPidFile={f / 'slurmctld.pid'}
SlurmdPidFile={f / 'slurmd.pid'}
SlurmctldLogFile={f / 'log' / 'slurmctld.log'}
SlurmdLogFile={f / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=600
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""
        (f / "slurm.conf").write_text(conf)

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.folder / "slurm.conf")}

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")  # noqa: SIM115 (kept open for the daemon's life)
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)

    def start(self, timeout_s: float = 60) -> LocalSlurm:
        """Start munged, slurmctld and slurmd; on failure the ones already started are stopped again."""
        try:
            return self._start_all(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start_all(self, timeout_s: float) -> LocalSlurm:
        self._write_files()
        f = self.folder
        self._start("munged", [_tool("munged"), "--foreground", "--force", f"--key-file={f / 'munge' / 'munge.key'}",
                               f"--socket={self.munge_socket}", f"--pid-file={f / 'munge' / 'munged.pid'}",
                               f"--seed-file={f / 'munge' / 'munge.seed'}", f"--log-file={f / 'log' / 'munged.log'}"])
        self._wait(lambda: self.munge_socket.exists(), timeout_s, "munged")
        conf = str(f / "slurm.conf")
        self._start("slurmctld", [_tool("slurmctld"), "-D", "-i", "-f", conf])
        self._start("slurmd", [_tool("slurmd"), "-D", "-f", conf, "-N", self.node])
        self._wait(self._node_ready, timeout_s, "slurmd (node idle)")
        return self

    def _node_ready(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env(), capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip().startswith(("idle", "mix", "alloc"))

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.folder / 'log'}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what} not ready after {timeout_s}s; see {self.folder / 'log'}\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for p in sorted((self.folder / "log").glob("*")):
            parts.append(f"== {p.name}\n" + p.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the daemons this object started (by pid), slurmd first."""
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
