"""A throwaway one-node SLURM cluster on localhost, for the SLURM workflow tests.

`ensure_slurm()` installs Debian's SLURM packages when they are missing (root + apt-get
only). `SlurmCluster` writes slurm.conf / gres.conf into a private directory, starts its
own munged, slurmctld and slurmd in the foreground (so it knows their pids), waits until
the node is idle, and stops exactly those processes at teardown. Nothing under /etc is
touched: the daemons and every client command find the cluster through SLURM_CONF
(`cluster.env`), and munge runs on a private socket named in slurm.conf's AuthInfo.

The cluster has no slurmdbd (so no `sacct`/`sacctmgr`): finished jobs are recorded by
`JobCompType=jobcomp/filetxt` in `jobcomp.log`, one line per job with its TRES, and a fake
GPU is declared (`Gres=gpu:1`, `gres.conf: Name=gpu Count=1`, no device file) so that
`sbatch --gpus=1` / `--gres=gpu:1` jobs can be scheduled and show `gres/gpu=1`.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "munged"]
SBIN = ("/usr/sbin", "/sbin")


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def cannot_run(reason: str) -> None:
    """Skip the calling test with `reason`; fail instead when running in CI."""
    print(f"SLURM test cannot run: {reason}")
    if os.environ.get("CI"):
        pytest.fail(f"SLURM test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def ensure_slurm() -> None:
    """Install slurmctld/slurmd/slurm-client/munge with apt-get if missing."""
    missing = [d for d in DAEMONS if _which(d) is None]
    if not missing:
        return
    if os.name != "posix" or os.geteuid() != 0:
        cannot_run(f"SLURM is not installed ({', '.join(missing)} missing) and we are not root")
    if shutil.which("apt-get") is None:
        cannot_run(f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            cannot_run(f"`{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    still = [d for d in DAEMONS if _which(d) is None]
    if still:
        cannot_run(f"after apt-get install, still missing: {', '.join(still)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> tuple[int, int]:
    """CPUs and usable memory (MB) of this machine, as slurmd -C reports them."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True).stdout
    cpus = re.search(r"CPUs=(\d+)", out)
    mem = re.search(r"RealMemory=(\d+)", out)
    ncpu = int(cpus.group(1)) if cpus else (os.cpu_count() or 1)
    real = int(mem.group(1)) if mem else 2048
    # leave some head room: slurmd drains a node that reports less than configured
    return ncpu, max(512, int(real * 0.9))


@dataclass
class SlurmCluster:
    root: Path
    partition: str = "debug"
    node: str = "localhost"
    cpus: int = 0
    mem_mb: int = 0
    procs: dict = field(default_factory=dict)

    # -- paths -----------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def jobcomp(self) -> Path:
        return self.root / "jobcomp.log"

    @property
    def env(self) -> dict:
        """os.environ plus SLURM_CONF; pass it to every snakemake/sbatch call."""
        env = dict(os.environ, SLURM_CONF=str(self.conf))
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env.get("PATH", ""), *SBIN])
        for var in list(env):  # never inherit an outer allocation
            if var.startswith(("SLURM_JOB", "SLURM_STEP", "SBATCH_", "SRUN_")):
                env.pop(var)
        return env

    # -- configuration ---------------------------------------------------------------
    def write_config(self) -> None:
        cpus, mem = _node_hardware()
        self.cpus, self.mem_mb = self.cpus or cpus, self.mem_mb or mem
        r = self.root
        for d in ("etc", "state", "spool", "log", "munge", "bin"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r, 0o755)  # munged wants its socket directory traversable
        key = r / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o600)
        self.munge_socket = r / "munge" / "munge.socket"
        self.conf.write_text(f"""\
ClusterName=snaketest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
MailProg=/bin/true
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={r / "etc" / "plugstack.conf"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
# finished jobs stay visible to squeue/scontrol for 1 h (squeue-based status, GPU checks)
MinJobAge=3600
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={self.node} CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        # a fake GPU: no device file, so nothing is bound or checked
        (r / "etc" / "gres.conf").write_text(f"NodeName={self.node} Name=gpu File=/dev/null Count=1\n")
        (r / "etc" / "plugstack.conf").write_text("")
        # snakemake-executor-plugin-slurm-jobstep strips every SLURM_* variable but the
        # job ids before it calls `srun` inside the job, SLURM_CONF included; a real
        # cluster's srun finds /etc/slurm/slurm.conf (or configless), ours gets it here.
        srun = r / "bin" / "srun"
        srun.parent.mkdir(exist_ok=True)
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {_which("srun")} "$@"\n')
        srun.chmod(0o755)

    # -- daemons ---------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the daemon's, while it runs
        self.procs[name] = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd), env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def start(self, timeout: float = 60) -> SlurmCluster:
        atexit.register(self.stop)  # backstop if the fixture teardown never runs
        self.write_config()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                _which("munged"),
                "-F",
                "--force",
                f"--key-file={m / 'munge.key'}",
                f"--socket={self.munge_socket}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), 15, "munged socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(
            lambda: self.run("scontrol", "ping", check=False).stdout.count("UP") > 0,
            timeout,
            "slurmctld to answer `scontrol ping`",
        )
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, f"node {self.node} to become idle in sinfo")
        return self

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%t", check=False).stdout
        return out.strip() == "idle"

    def _wait(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}\n{self.logs()}")
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace")
            if text.strip():
                parts.append(f"--- {f.name} ---\n{text[-tail:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel our jobs, then stop slurmd, slurmctld and munged (by pid, in that order)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--partition", self.partition, check=False)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                q = self.run("squeue", "-h", "-t", "PD,R,CG", "-o", "%i", check=False)
                if q.returncode != 0 or not q.stdout.strip():
                    break
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    # -- job records -----------------------------------------------------------------
    def completed_jobs(self) -> list[dict]:
        """Every finished job, parsed from the jobcomp/filetxt log (key=value fields)."""
        if not self.jobcomp.exists():
            return []
        jobs = []
        for line in self.jobcomp.read_text().splitlines():
            rec = dict(re.findall(r"(\w+)=(\S*)", line))
            if rec.get("JobId"):
                jobs.append(rec)
        return jobs

    def show_job(self, jobid: str) -> dict:
        """`scontrol show job` of a job still known to slurmctld (MinJobAge)."""
        out = self.run("scontrol", "-o", "show", "job", str(jobid), check=False).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))
