"""helpers.timing, helpers.procmem and helpers.bench: the statistics, the timing harness, process memory,
the recorded and published figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import bench, procmem, timing
from helpers.timing import MIN_RUNS_FOR_P95, BenchError, Timing, percentile

ROOT = Path(__file__).resolve().parent.parent
needs_root_namespaces = pytest.mark.needs("root", "namespaces")


def test_percentile_interpolates_between_ranks():
    assert percentile([5, 1, 3], 50) == 3
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 95) == 95
    assert percentile([7], 95) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_timing_summary_and_ratio_round_trip():
    few = Timing("x", "x rung", [1.0, 2.0, 3.0, 10.0], warmup=2, hyperfine_median_ms=2.0, check_median_ms=2.5)
    assert (few.min, few.median) == (1.0, 2.5)
    assert few.p95 is None  # four runs say nothing about the slowest 5 %
    assert few.ratio == 1.25
    data = few.to_dict()
    assert data["runs"] == 4 and data["median_ms"] == 2.5 and data["p95_ms"] is None
    assert Timing.from_dict(json.loads(json.dumps(data))) == few
    many = Timing("y", "y rung", [float(v) for v in range(1, MIN_RUNS_FOR_P95 + 1)], warmup=0)
    assert many.p95 == pytest.approx(percentile(many.samples_ms, 95))
    assert Timing("y", "y", [1.0], 0).ratio is None


def test_time_command_counts_runs_not_warmups_and_measures_a_known_sleep():
    calls = []
    samples = timing.time_command(["sleep", "0.05"], runs=3, warmup=2, on_run=lambda: calls.append(1))
    assert len(samples) == 3 and len(calls) == 3
    assert all(45 <= ms < 1000 for ms in samples), samples  # at least the sleep, and not absurdly more


def test_a_failing_or_missing_command_is_a_clear_error():
    with pytest.raises(BenchError, match="exit status 1"):
        timing.time_command(["false"], runs=2, warmup=1)
    with pytest.raises(BenchError, match="not installed"):
        timing.time_command(["no-such-command-here"], runs=1, warmup=0)
    with pytest.raises(BenchError, match="did not finish"):
        timing.time_command(["sleep", "5"], runs=1, warmup=1, timeout=0.2)


def test_time_call_excludes_warmups():
    seen = []
    samples = timing.time_call(lambda: seen.append(time.sleep(0.01)), runs=2, warmup=1)
    assert len(seen) == 3 and len(samples) == 2 and min(samples) >= 9


def test_timing_command_line_prints_samples_as_json():
    done = subprocess.run([sys.executable, "-m", "helpers.timing", "--runs", "4", "--warmup", "1", "--",
                           "true"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    samples = json.loads(done.stdout)
    assert len(samples) == 4 and all(isinstance(ms, float) and ms > 0 for ms in samples)


@pytest.mark.skipif(shutil.which("hyperfine") is None, reason="hyperfine is not installed")
def test_hyperfine_agrees_with_the_harness_on_a_sleep(tmp_path):
    (median,) = timing.hyperfine([["sleep", "0.05"]], runs=3, warmup=1, folder=tmp_path)
    assert 45 <= median < 1000
    assert not list(tmp_path.iterdir())  # its report file was read and removed


def test_descendants_and_memory_of_a_process_tree():
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(procmem.descendants(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = procmem.descendants(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 2
        assert procmem.rss_kib(tree[1]) > 0 and 0 < procmem.pss_kib(tree[1]) <= procmem.rss_kib(tree[1])
    finally:
        os.killpg(parent.pid, 9)
        parent.wait()
    assert procmem.rss_kib(parent.pid) == 0 and procmem.pss_kib(parent.pid) == 0  # gone: 0, not an error
    assert procmem.parent(parent.pid) == 0 and procmem.name(parent.pid) == "?"


def test_mapping_rss_counts_only_the_touched_part_of_a_mapping_of_that_size():
    code = ("import mmap, sys; m = mmap.mmap(-1, 96 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS); "
            "m.write(b'x' * (32 << 20)); print('ready', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        touched = procmem.mapping_rss_kib(child.pid, 96 << 20)
        assert 30 * 1024 <= touched <= 34 * 1024
        assert procmem.peak_rss_kib(child.pid) >= touched
        assert child.pid in procmem.pids_named(procmem.name(child.pid))
    finally:
        child.kill()
        child.wait()


def test_progress_writes_one_line_per_step_label_in_a_log(capsys):
    progress = timing.Progress(4)
    for label in ("a", "a", "b", "b"):
        progress.step(label)
    progress.close()
    assert capsys.readouterr().err.splitlines() == ["[bench] 1/4 a", "[bench] 3/4 b", "[bench] 4/4 b"]
    silent = timing.Progress(2, enabled=False)
    silent.step("x")
    assert capsys.readouterr().err == ""


def test_the_command_line_refuses_to_overwrite_results(tmp_path):
    out = tmp_path / "results.json"
    out.write_text("{}")
    done = subprocess.run([sys.executable, "-m", "helpers.bench", "--out", str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "--force" in done.stderr
    assert out.read_text() == "{}"


@needs_root_namespaces
def test_crun_prefix_hides_only_the_v2_mount_in_its_own_namespace():
    if not bench.cgroup_hybrid():
        pytest.skip("not a hybrid cgroup layout: crun runs without the prefix")
    inside = subprocess.run([*bench.private_mounts_without_unified(), "cat", "/proc/self/mounts"],
                            capture_output=True, text=True, check=True, timeout=30).stdout
    assert bench.HYBRID_HINT not in inside
    assert os.path.ismount(bench.HYBRID_HINT)  # the host still has it


def test_recorded_results_are_complete_and_ordered():
    results = bench.load_recorded()
    startup = {row["key"]: row for row in results["startup"]}
    assert {"process", "namespaces", "runc", "docker", "docker-sdk", "docker-bridge", "python", "kvm",
            "vm"} <= set(startup)
    medians = [startup[key]["median_ms"] for key in ("process", "namespaces", "docker", "vm")]
    assert medians == sorted(medians)
    assert startup["python"]["median_ms"] < startup["kvm"]["median_ms"]  # the same Python start, plus a VM
    for row in startup.values():
        assert row["runs"] == len(row["samples_ms"]) >= 4
        if row["runs"] >= MIN_RUNS_FOR_P95:
            assert row["min_ms"] <= row["median_ms"] <= row["p95_ms"]
        else:
            assert row["p95_ms"] is None and row["min_ms"] <= row["median_ms"]
    assert isinstance(results["vm_retries"], int) and results["vm_retries"] >= 0
    assert results["kvm_inside"]["median_ms"] < startup["kvm"]["median_ms"]
    vm_memory = next(row for row in results["memory"] if row["key"] == "vm")
    assert 0 < vm_memory["guest_ram_kib"] < vm_memory["runtime_pss_kib"]
    assert vm_memory["guest_ram_kib"] < vm_memory["guest_given_mib"] * 1024
    for key in ("process", "namespaces"):
        assert startup[key]["ratio"] is not None
    assert {"cpu", "cores", "kernel", "accelerator"} <= set(results["machine"])
    assert {row["kind"] for row in results["scale"]} == {"container", "vm"}
    assert results["unavailable"] == {}


def test_published_figures_each_have_a_source():
    figures = bench.load_published()
    ids = [figure["id"] for figure in figures]
    assert len(ids) == len(set(ids))
    assert {"firecracker-start", "lightvm-boot", "crun-100-true", "runc-100-true", "docker-run"} <= set(ids)
    for figure in figures:
        assert figure["value"] > 0 and figure["unit"] in {"ms", "s", "MiB", "MB"}
        assert figure["url"].startswith(("https://", "http://")) and figure["source"] and figure["quote"]


@pytest.mark.needs("root", "namespaces", "cgroups", "busybox")
def test_measuring_the_oci_runtimes_leaves_no_cgroup_and_no_container_state(monkeypatch):
    """The runtime is not killed before its container: it removes the container's cgroups itself, and a
    second and third measurement start the same container name again (runc refuses a name whose state is left)."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (it comes with the Docker engine's package)")
    monkeypatch.setenv("CLOUDNOTES_WITHOUT", "docker,qemu")  # only the rungs without the engine and the VM
    with bench.Bench(progress=False) as measured:
        for _ in range(3):
            rows = {row.key for row in measured.memory()}
            assert "runc" in rows
            left = [str(path) for path in Path("/sys/fs/cgroup").glob("**/cloudnotes-mem-*")]
            assert left == []
            for runtime in ("runc", "crun"):
                state = measured.work / f"{runtime}-state"
                assert not state.exists() or not any(state.iterdir()), f"{runtime} left state in {state}"
