"""Timing commands honestly, and the statistics of the samples.

:func:`time_command` starts a command with ``posix_spawn`` (no shell in between) and waits for it, on the
monotonic clock, after uncounted warm-up runs; :func:`time_call` does the same for a Python call;
:func:`hyperfine` asks an independent tool for the same measurement. :class:`Timing` keeps the samples
and reports min, median and, only where there are enough runs for it, the 95th percentile.

    python -m helpers.timing --runs 20 --warmup 3 -- COMMAND ARGS...   # the samples in ms, as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


class BenchError(RuntimeError):
    """A timed command failed; the message has the command and what it printed."""


# --- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between the two nearest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# A 95th percentile says something only when several samples lie beyond it: with 40 runs, two do.
MIN_RUNS_FOR_P95 = 40


@dataclass
class Timing:
    """One rung's start-up times in milliseconds (warm-up runs excluded) and what it ran."""

    key: str
    label: str
    samples_ms: list[float]
    warmup: int
    command: str = ""
    note: str = ""
    hyperfine_median_ms: float | None = None
    check_median_ms: float | None = None  # this harness's median in the rounds alternating with hyperfine

    @property
    def min(self) -> float:
        return min(self.samples_ms)

    @property
    def median(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float | None:
        """The 95th percentile, or None with fewer than :data:`MIN_RUNS_FOR_P95` runs (too few to say)."""
        if len(self.samples_ms) < MIN_RUNS_FOR_P95:
            return None
        return percentile(self.samples_ms, 95)

    @property
    def ratio(self) -> float | None:
        """This harness's median over hyperfine's, timed in alternating rounds of the same run (1.0 = agree)."""
        if not (self.hyperfine_median_ms and self.check_median_ms):
            return None
        return self.check_median_ms / self.hyperfine_median_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "min_ms": self.min, "median_ms": self.median, "p95_ms": self.p95,
                "runs": len(self.samples_ms), "ratio": self.ratio}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        names = {"key", "label", "samples_ms", "warmup", "command", "note", "hyperfine_median_ms", "check_median_ms"}
        return cls(**{name: data[name] for name in names if name in data})


# --- progress ------------------------------------------------------------------------------------------


class Progress:
    """A progress bar: a widget in JupyterLab, a redrawn line on a terminal, one line per step in a log."""

    def __init__(self, total: int, enabled: bool = True, width: int = 30):
        self.total, self.done, self.width, self.label = max(total, 1), 0, width, ""
        self.widget = self.stream = None
        if not enabled:
            return
        if _in_notebook():
            import ipywidgets
            from IPython.display import display

            self.widget = ipywidgets.IntProgress(value=0, min=0, max=self.total, description="benchmark")
            self.text = ipywidgets.Label()
            display(ipywidgets.HBox([self.widget, self.text]))
        else:
            self.stream = sys.stderr

    def step(self, label: str, count: int = 1) -> None:
        self.done = min(self.done + count, self.total)
        changed, self.label = label != self.label, label
        if self.widget is not None:
            self.widget.value, self.text.value = self.done, f"{self.done}/{self.total} {label}"
        elif self.stream is not None and self.stream.isatty():
            filled = round(self.width * self.done / self.total)
            self.stream.write(f"\r[{'#' * filled}{' ' * (self.width - filled)}] {self.done}/{self.total} {label:<40}")
            self.stream.flush()
        elif self.stream is not None and (changed or self.done == self.total):
            self.stream.write(f"[bench] {self.done}/{self.total} {label}\n")

    def close(self) -> None:
        if self.stream is not None and self.stream.isatty():
            self.stream.write("\n")
        if self.widget is not None:
            self.widget.bar_style = "success"


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


# --- the timing harness ------------------------------------------------------------------------------


def _spawn_and_wait(path: str, argv: Sequence[str], environ: dict[str, str], timeout: float) -> int:
    """posix_spawn the command with stdout and stderr to /dev/null, wait for it; its wait status."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    pid = os.posix_spawn(path, list(argv), environ, file_actions=actions)
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def _check_once(argv: Sequence[str], timeout: float) -> None:
    """Run the command once with its output captured, so that a broken rung fails with its own message."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{shlex.join(argv)} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise BenchError(f"{shlex.join(argv)} could not start: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise BenchError(f"{shlex.join(argv)} failed with exit status {done.returncode}: {detail}")


def time_command(argv: Sequence[str], runs: int = 20, warmup: int = 3, timeout: float = 60,
                 on_run: Callable[[], None] | None = None) -> list[float]:
    """Wall time in ms of ``runs`` runs of ``argv`` after ``warmup`` uncounted ones (the first is checked)."""
    path = shutil.which(argv[0])
    if path is None:
        raise BenchError(f"{argv[0]} is not installed")
    environ = dict(os.environ)
    _check_once([path, *argv[1:]], timeout)
    samples = []
    for index in range(max(warmup - 1, 0) + runs):
        start = time.perf_counter_ns()
        status = _spawn_and_wait(path, argv, environ, timeout)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if status != 0:
            raise BenchError(f"{shlex.join(argv)} failed during the benchmark (wait status {status})")
        if index >= warmup - 1:
            samples.append(elapsed_ms)
            if on_run:
                on_run()
    return samples


def time_call(function: Callable[[], Any], runs: int = 20, warmup: int = 3,
              on_run: Callable[[], None] | None = None) -> list[float]:
    """Wall time in ms of ``runs`` calls of ``function`` after ``warmup`` uncounted ones."""
    samples = []
    for index in range(warmup + runs):
        start = time.perf_counter_ns()
        function()
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if index >= warmup:
            samples.append(elapsed_ms)
            if on_run:
                on_run()
    return samples


def hyperfine(commands: Sequence[Sequence[str]], runs: int, warmup: int, folder: Path,
              prefix: Sequence[str] = ()) -> list[float]:
    """hyperfine's median in ms for each command (``--shell=none``: no shell, as in this harness)."""
    if shutil.which("hyperfine") is None:
        raise BenchError("hyperfine is not installed (Debian package hyperfine)")
    report = folder / f"hyperfine-{time.monotonic_ns()}.json"
    argv = [*prefix, "hyperfine", "--shell=none", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
            "--export-json", str(report), *[shlex.join(command) for command in commands]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"hyperfine failed: {(done.stderr.strip() or done.stdout.strip())[-300:]}")
    results = json.loads(report.read_text())["results"]
    report.unlink()
    return [result["median"] * 1000 for result in results]


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.timing",
                                     description="time one command and print the samples (ms) as JSON")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    options = parser.parse_args(args)
    argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    try:
        print(json.dumps(time_command(argv, options.runs, options.warmup)))
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
