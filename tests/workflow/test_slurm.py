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
import threading
import time
from pathlib import Path

import pandas as pd
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
    prof["set-threads"] = {r: min(int(n), cluster.cpus) for r, n in (prof.get("set-threads") or {}).items()}
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
            f"{problem} after {elapsed:.0f}s\n{log[-8000:]}\n{slurm_logs[-6000:]}\n{cluster.logs(1500)}",
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
    assert set(submitted) == set(remote), (
        f"jobs run without SLURM: {sorted(set(remote) - set(submitted))}; log:\n{log[-4000:]}"
    )
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
        gres = " ".join(info.get(k, "") for k in ("TresPerJob", "TresPerNode", "TresPerTask", "TRES"))
        assert re.search(r"gres[:/]gpu[:=]1\b", gres), f"job {sid} did not ask for a GPU: {info}"
        detail = cluster.run("scontrol", "-d", "show", "job", sid).stdout
        assert re.search(r"JOB_GRES=gpu(:\w+)?:1\b", detail), detail  # allocated


def check_cpus(cluster: SlurmCluster, slurm_ids: list[str], cpus: int):
    for sid in slurm_ids:
        info = cluster.show_job(sid)
        assert info.get("NumCPUs") == str(cpus), info


# -- tests -----------------------------------------------------------------------------
# The demo DAG at a size that fits CI's few minutes: every stage still runs, as SLURM jobs.
# Its training is long enough (~110 s of CPU at one thread here) to outlast the early signal of
# a 2-minute time limit (60 to 90 s after the start), and checkpoints every 3 s.
TIME_LIMITED_EPOCHS = 100
# The demo made small, one experiment and one seed: a training that outlasts its time limit.
SMALL_DEMO = dict(
    demo=dict(tracks_per_genre=6),
    training=dict(epochs=TIME_LIMITED_EPOCHS, patience=TIME_LIMITED_EPOCHS, checkpoint_minutes=0.05),
    seeds=[0],
)
TRAINED_RUN = "results/experiments/default/seed0"
LOCAL_RULES = {"demo_archives", "download", "model_weights", "primary_model", "compare_experiments", "all"}
SIGNAL = re.compile(r"--signal=TERM@(\d+)")


def time_limited_profile(cluster: SlurmCluster, dest: Path) -> Path:
    """The test profile with the first `train` attempt limited to 2 minutes, its early SIGTERM
    (the project profile's `--signal=TERM@N`) 30 s before that, and the retry given 10 minutes,
    so that one resume finishes the run. One thread for `train` (the uninterrupted reference
    run takes the other core) and for `baseline` (so that it runs beside `train`)."""
    profile = make_test_profile(cluster, dest)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    train = settings["set-resources"]["train"]
    assert SIGNAL.search(train["slurm_extra"]), train  # the project profile asks for the signal
    train.update(
        runtime="2 if attempt == 1 else 10",
        slurm_extra=SIGNAL.sub("--signal=TERM@30", train["slurm_extra"]),
    )
    # One thread for the shards too: two at a time on the test's 2-CPU node.
    settings["set-threads"].update(train=1, baseline=1, log_mel_shard=1)
    settings["retries"] = 1
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return profile


def write_small_demo_config(dest: Path) -> dict:
    """config/demo.yaml with SMALL_DEMO's changes and no experiments, written to `dest`; returns
    the training settings the rule gets (schema defaults filled in, the seed added)."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config.pop("experiments")
    for key, value in SMALL_DEMO.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return config["training"] | {"seed": config["seeds"][0]}


# The same training, in one uninterrupted process.
REFERENCE_TRAINING = """\
import json, sys
from fma_genre.training.loop import train
from fma_genre.training.settings import TrainingSettings
out, settings = sys.argv[1], json.loads(sys.argv[2])
train("data/processed/final_feature_manifest.csv", "data/processed/unified_genres.txt",
      "data/models/tiny-random-w2v-bert", f"{out}/model", f"{out}/training_log.csv", f"{out}/state",
      f"{out}/tensorboard", TrainingSettings(**settings), threads=1)
"""
TRAINING_INPUTS = ("data/processed/final_feature_manifest.csv", "data/models/tiny-random-w2v-bert")

# A rule script under a plain 1-minute limit (no --signal): what SLURM's own SIGTERM reaches.
SIGNAL_PROBE_SNAKEFILE = """\
rule probe:
    output: "probe.done"
    log: "probe.log"
    resources: runtime=1
    script: "probe.py"
"""
SIGNAL_PROBE_SCRIPT = """\
import signal, time
log = open(snakemake.log[0], "w", buffering=1)
signal.signal(signal.SIGTERM, lambda signum, frame: log.write(f"SIGTERM after {time.time() - t0:.0f} s\\n"))
t0 = time.time()
log.write("started\\n")
time.sleep(300)  # far past the limit: SLURM must stop it
open(snakemake.output[0], "w").write("not reached")
"""


def start_beside_training(cluster: SlurmCluster, root: Path, workdir: Path, settings: dict) -> list:
    """Once the DAG has made the training inputs (each written atomically): the uninterrupted
    reference training, and the signal probe (a SLURM job of its own)."""
    while not all((workdir / path).exists() for path in TRAINING_INPUTS):
        time.sleep(1)
    reference = subprocess.Popen(
        [sys.executable, "-c", REFERENCE_TRAINING, str(root / "reference"), json.dumps(settings)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    probe = root / "probe"
    probe.mkdir()
    (probe / "Snakefile").write_text(SIGNAL_PROBE_SNAKEFILE)
    (probe / "probe.py").write_text(SIGNAL_PROBE_SCRIPT)
    probe_run = subprocess.Popen(
        [
            *SNAKEMAKE,
            "--workflow-profile",
            str(make_test_profile(cluster, root / "probe_profile")),
            "probe.done",
        ],
        cwd=probe,
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    return [reference, probe_run]


@pytest.fixture(scope="module")
def slurm_demo(cluster: SlurmCluster, tmp_path_factory):
    """The project's demo DAG end to end through SLURM with the project's SLURM profile, its
    training time-limited; beside the training, the uninterrupted reference and the probe."""
    root = tmp_path_factory.mktemp("slurm_demo")
    workdir = root / "demo"
    workdir.mkdir()
    small_demo = root / "small_demo.yaml"
    settings = write_small_demo_config(small_demo)
    background: list = []
    starter = threading.Thread(
        target=lambda: background.extend(start_beside_training(cluster, root, workdir, settings)),
        daemon=True,
    )
    starter.start()
    try:
        log, elapsed = run_snakemake(
            cluster,
            [
                "--snakefile",
                str(REPO / "Snakefile"),
                "--directory",
                str(workdir),
                "--configfile",
                str(small_demo),
                "--workflow-profile",
                str(time_limited_profile(cluster, root / "profile")),
                "results/metrics.json",
            ],
            cwd=REPO,
            workdir=workdir,
            timeout=1200,
        )
        print(f"demo DAG on SLURM, training time-limited: {elapsed:.1f}s")
        starter.join(timeout=10)
        reference, probe_run = background
        _, reference_errors = reference.communicate(timeout=600)
        assert reference.returncode == 0, reference_errors[-3000:]
        probe_run.wait(timeout=300)
    finally:
        for process in background:
            if process.poll() is None:
                process.kill()
    return workdir, log, root / "reference", root / "probe"


def test_demo_dag_on_slurm(cluster: SlurmCluster, slurm_demo):
    workdir, log, _, _ = slurm_demo
    by_rule = check_all_jobs_via_slurm(cluster, log, LOCAL_RULES)
    assert {"train", "score", "evaluate"} <= set(by_rule), sorted(by_rule)
    assert not LOCAL_RULES & set(by_rule)
    check_gpu_requested(cluster, by_rule["train"] + by_rule["score"])
    # The profile's threads become --cpus-per-task (score: min(4, the node's CPUs)).
    check_cpus(cluster, by_rule["score"], min(4, cluster.cpus))

    metrics = json.loads((workdir / "results" / "metrics.json").read_text())
    acc = metrics["model"]["top_genre_accuracy"]
    assert isinstance(acc, (int, float)) and 0.0 <= acc <= 1.0, metrics


def test_time_limited_training_resumes_to_the_uninterrupted_result(cluster: SlurmCluster, slurm_demo):
    """SLURM stops `train` before its time limit; Snakemake's retry resubmits it; it resumes from
    its checkpoint; the finished training log equals an uninterrupted run's."""
    workdir, log, reference, _ = slurm_demo
    # Both attempts went through SLURM: the first was stopped, the retry completed.
    attempts = [slurm_id for _, slurm_id, rule in SUBMITTED.findall(log) if rule == "train"]
    records = {rec["JobId"]: rec for rec in cluster.completed_jobs()}
    states = [records[slurm_id]["JobState"] for slurm_id in attempts]
    assert len(attempts) == 2 and states[0] in {"FAILED", "TIMEOUT"} and states[1] == "COMPLETED", states
    assert [cluster.show_job(slurm_id).get("TimeLimit") for slurm_id in attempts] == ["00:02:00", "00:10:00"]
    # What reached the training process: SIGTERM, answered with a checkpoint before it exited;
    # the retry resumed from that state.
    first, retry = (
        next(workdir.glob(f".snakemake/slurm_logs/rule_train/**/{slurm_id}.log")).read_text()
        for slurm_id in attempts
    )
    assert re.search(r"checkpoint: .*\n.*SIGTERM: stopped (at step|in the validation|after)", first), first[
        -3000:
    ]
    resumed = re.search(r"resuming: (\d+) epochs and \d+ batches", retry)
    assert resumed and 0 < int(resumed.group(1)) < TIME_LIMITED_EPOCHS, retry[-3000:]

    finished = pd.read_csv(workdir / TRAINED_RUN / "training_log.csv")
    uninterrupted = pd.read_csv(reference / "training_log.csv")
    assert len(finished) == TIME_LIMITED_EPOCHS
    timing = ["epoch_seconds", "train_clips_per_second"]
    pd.testing.assert_frame_equal(finished.drop(columns=timing), uninterrupted.drop(columns=timing))
    summaries = [
        json.loads((folder / "training_summary.json").read_text())
        for folder in (workdir / "results" / "model", reference / "model")
    ]
    assert summaries[0]["best_epoch"] == summaries[1]["best_epoch"]


def test_slurms_own_time_limit_sigterm_reaches_a_rule_script(slurm_demo):
    """Without --signal: at the time limit (checked every ~30 s) SLURM signals every process
    of the plugin's job step, the rule script included, before SIGKILL."""
    probe_log = (slurm_demo[3] / "probe.log").read_text()
    # Counted from the script's start, which comes seconds after the job's (the plugin's own
    # Snakemake starts first, slower on a busy machine): at a 1-minute limit, 40 s at the least.
    assert re.search(r"SIGTERM after ([4-9]\d|1[0-2]\d) s", probe_log), probe_log


def test_a_two_task_training_job_trains_one_model(cluster: SlurmCluster, slurm_demo, tmp_path):
    """The profile's multi-node settings (`tasks`, `mpi: srun`) on the one-node test cluster:
    SLURM starts two tasks, each a launcher with one CPU process (gloo), which meet at task 0
    and train one model together."""
    workdir = slurm_demo[0]
    config = yaml.safe_load((workdir.parent / "small_demo.yaml").read_text())
    # The run's own experiment unchanged (nothing of it reruns), and a short one beside it.
    config["experiments"] = {"default": {}, "two_tasks": {"epochs": 2, "patience": 2}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    profile = make_test_profile(cluster, tmp_path / "profile")
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["set-resources"]["train"].update(tasks=2, mpi="'srun'", cpu_processes=1, gpu=0, runtime=10)
    settings["set-threads"]["train"] = 1
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    run = "results/experiments/two_tasks/seed0"
    log, _ = run_snakemake(
        cluster,
        [
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--workflow-profile",
            str(profile),
            f"{run}/model",
        ],
        cwd=REPO,
        workdir=workdir,
        timeout=600,
    )
    assert [rule for _, _, rule in SUBMITTED.findall(log)] == ["train"], log[-3000:]
    training_log = (workdir / "logs/train/two_tasks/seed0.log").read_text()
    assert "training on CPU (1 threads) x 2 processes" in training_log, training_log[-3000:]
    summary = json.loads((workdir / run / "model" / "training_summary.json").read_text())
    assert summary["epochs_trained"] == 2 and summary["device"] == "CPU (1 threads) x 2"
    assert len(pd.read_csv(workdir / run / "training_log.csv")) == 2
