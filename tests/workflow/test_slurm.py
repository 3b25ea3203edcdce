"""End-to-end runs through a real (local, one-node) SLURM cluster with the project's SLURM
profile, workflow/profiles/slurm, adapted only where the test cluster differs: partition
`debug`, no account (no slurmdbd), squeue-based job status, CPUs/memory capped to this
machine, fast first status check.

    .venv/bin/python -m pytest -m slurm tests/workflow/test_slurm.py -v -s

Needs root (it installs slurmctld/slurmd/slurm-client/munge with apt-get when missing and
starts private daemons); skips otherwise, or fails when the CI variable is set.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmCluster, cannot_run, ensure_slurm  # noqa: E402

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]



# -- fixtures ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ensure_slurm()
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    t0 = time.monotonic()
    try:
        c.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        c.stop()
        cannot_run(f"could not start a local SLURM cluster: {e}")
    print(f"SLURM cluster up in {time.monotonic() - t0:.1f}s ({c.cpus} CPUs, {c.mem_mb} MB)")
    yield c
    c.stop()


def make_test_profile(cluster: SlurmCluster, dest: Path) -> Path:
    """workflow/profiles/slurm adapted to the test cluster, written to dest/config.yaml."""
    prof = yaml.safe_load(SLURM_PROFILE.read_text())
    assert prof["executor"] == "slurm"
    mem_cap = max(500, cluster.mem_mb // 4)

    def adapt(res: dict) -> dict:
        res = dict(res)
        res.pop("slurm_account", None)  # no slurmdbd: the plugin would fail to validate it
        res.pop("gpu_model", None)  # the fake GPU has no type
        if "slurm_partition" in res:
            res["slurm_partition"] = f"'{cluster.partition}'"
        if isinstance(res.get("mem_mb"), int):
            res["mem_mb"] = min(res["mem_mb"], mem_cap)
        return res

    prof["default-resources"] = adapt(prof.get("default-resources") or {})
    prof["set-resources"] = {r: adapt(v) for r, v in (prof.get("set-resources") or {}).items()}
    prof["set-threads"] = {
        r: min(int(n), cluster.cpus) for r, n in (prof.get("set-threads") or {}).items()
    }
    prof.update(
        {
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "slurm-keep-successful-logs": True,
            "latency-wait": 5,
            "retries": 0,
        }
    )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


def run_snakemake(cluster: SlurmCluster, args: list[str], cwd: Path, workdir: Path, timeout: int):
    """Run snakemake with SLURM_CONF set; fail with its log, the SLURM job logs and the
    daemon logs when it fails or runs past `timeout` (then it is interrupted, which makes
    it scancel its jobs)."""
    out_file = workdir.parent / f"{workdir.name}.snakemake.out"
    t0 = time.monotonic()
    with open(out_file, "w") as out:
        proc = subprocess.Popen(
            [*SNAKEMAKE, *args], cwd=cwd, env=cluster.env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            rc = proc.wait(timeout=timeout)
            problem = f"snakemake failed ({rc})"
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc, problem = None, f"snakemake timed out ({timeout}s)"
    elapsed = time.monotonic() - t0
    log = out_file.read_text(errors="replace")
    if rc != 0:
        slurm_logs = "\n".join(
            f"--- {p} ---\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted(workdir.glob(".snakemake/slurm_logs/**/*.log"))
        )
        pytest.fail(
            f"{problem} after {elapsed:.0f}s\n{log[-8000:]}\n"
            f"{slurm_logs[-6000:]}\n{cluster.logs(1500)}",
            pytrace=False,
        )
    return log, elapsed


# -- log/record checks -----------------------------------------------------------------
JOB_HEADER = re.compile(r"^(localrule|rule|checkpoint) (\w+):\s*$")
JOBID = re.compile(r"^\s+jobid: (\d+)\s*$")
SUBMITTED = re.compile(
    r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/"
)


def jobs_in_log(log: str) -> dict[str, tuple[str, bool]]:
    """Snakemake job id -> (rule, is_local) for every job Snakemake started."""
    jobs, header = {}, None
    for line in log.splitlines():
        m = JOB_HEADER.match(line)
        if m:
            header = (m.group(2), m.group(1) == "localrule")
            continue
        m = JOBID.match(line)
        if m and header:
            jobs[m.group(1)] = header
            header = None
    return jobs


def check_all_jobs_via_slurm(cluster: SlurmCluster, log: str, local_rules: set[str]):
    """Every non-local job was sbatch'ed, completed in SLURM; local rules were not.

    Returns rule -> list of SLURM job ids."""
    jobs = jobs_in_log(log)
    found = SUBMITTED.findall(log)
    submitted = {j: sid for j, sid, _ in found}  # snakemake jobid -> slurm jobid
    remote = {j: r for j, (r, local) in jobs.items() if not local}
    assert remote, f"no cluster jobs found in the log:\n{log[-4000:]}"
    assert set(submitted) == set(
        remote
    ), f"jobs run without SLURM: {sorted(set(remote) - set(submitted))}; log:\n{log[-4000:]}"
    for j, _, rule in found:
        assert rule == remote[j], f"job {j} of rule {remote[j]} submitted as rule_{rule}"
    for j, (rule, local) in jobs.items():
        if rule in local_rules:
            assert local and j not in submitted, f"local rule {rule} was submitted to SLURM"
    records = {rec["JobId"]: rec for rec in cluster.completed_jobs()}
    by_rule: dict[str, list[str]] = {}
    for j, slurm_id in submitted.items():
        rec = records.get(slurm_id)
        assert rec is not None, f"SLURM job {slurm_id} missing from {cluster.jobcomp}"
        assert rec["JobState"] == "COMPLETED", rec
        assert rec["Partition"] == cluster.partition, rec
        info = cluster.show_job(slurm_id)  # empty once MinJobAge has passed
        if info:
            assert info.get("Comment", "").startswith(f"rule_{remote[j]}"), info
        by_rule.setdefault(remote[j], []).append(slurm_id)
    return by_rule


def check_gpu_requested(cluster: SlurmCluster, slurm_ids: list[str]):
    for sid in slurm_ids:
        info = cluster.show_job(sid)
        assert info, f"SLURM job {sid} no longer known to slurmctld (MinJobAge)"
        gres = " ".join(
            info.get(k, "") for k in ("TresPerJob", "TresPerNode", "TresPerTask", "TRES")
        )
        assert re.search(r"gres[:/]gpu[:=]1\b", gres), f"job {sid} did not ask for a GPU: {info}"
        detail = cluster.run("scontrol", "-d", "show", "job", sid).stdout
        assert re.search(r"JOB_GRES=gpu(:\w+)?:1\b", detail), detail  # allocated


def check_cpus(cluster: SlurmCluster, slurm_ids: list[str], cpus: int):
    for sid in slurm_ids:
        info = cluster.show_job(sid)
        assert info.get("NumCPUs") == str(cpus), info


# -- tests -----------------------------------------------------------------------------
# The demo DAG at a size that fits CI's few minutes: every stage still runs, as SLURM jobs.
SMALL_DEMO = """\
demo:
  enabled: true
  tracks_per_genre: 6
training:
  epochs: 2
"""


def test_demo_dag_on_slurm(cluster: SlurmCluster, tmp_path: Path):
    """The project's demo DAG end to end through SLURM with the project's SLURM profile."""
    workdir = tmp_path / "demo"
    workdir.mkdir()
    profile = make_test_profile(cluster, tmp_path / "profile")
    small_demo = tmp_path / "small_demo.yaml"
    small_demo.write_text(SMALL_DEMO)
    log, elapsed = run_snakemake(
        cluster,
        [
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(REPO / "config" / "demo.yaml"),
            str(small_demo),
            "--workflow-profile",
            str(profile),
            "results/metrics.json",
        ],
        cwd=REPO,
        workdir=workdir,
        timeout=900,
    )
    print(f"demo DAG on SLURM: {elapsed:.1f}s")
    local_rules = {"demo_archives", "download", "model_weights", "all"}
    by_rule = check_all_jobs_via_slurm(cluster, log, local_rules)
    assert "train" in by_rule and "evaluate" in by_rule, sorted(by_rule)
    assert not local_rules & set(by_rule)
    check_gpu_requested(cluster, by_rule["train"])
    check_cpus(cluster, by_rule["log_mel_shard"], min(8, cluster.cpus))

    metrics = json.loads((workdir / "results" / "metrics.json").read_text())
    acc = metrics["model"]["top_genre_accuracy"]
    assert isinstance(acc, (int, float)) and 0.0 <= acc <= 1.0, metrics
