"""The curated job in a fresh process, as a launched run has it: its own peak memory measured.

``bench/pipeline.py --spark-only`` runs the Spark job here, so the run process's peak resident
memory is the job's own: in the benchmark's process it sits on top of whatever the seeding and
the baseline left there (5 GB at 1M orders), which hides the figure the bound is about.

The child is spawned, not forked: it starts from an empty interpreter, imports the code
location and the job, records its resident memory then (the floor every run process pays),
runs the job, and reports its peak (the kernel's high-water mark, so no spike between two
samples is missed) and the largest of its own children's (the forked sealing workers, which
share its pages).
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
import time
from dataclasses import dataclass
from queue import Empty

MIB = 2**20


@dataclass(frozen=True)
class FreshRun:
    success: bool
    seconds: float
    #: Resident memory once the code location and the job are loaded, before the run.
    start_rss: int
    #: The run process's peak resident memory over its whole life.
    peak_rss: int
    #: The largest peak of a process it forked (the sealing workers).
    children_peak_rss: int
    #: step key -> seconds.
    steps: dict[str, float]
    #: step key -> the run process's peak resident memory (the kernel's high-water mark) once
    #: the step had run: where it jumps, that step set a new peak (sampled every 50 ms, steps
    #: one after another in process; a sample of the current memory can miss a spike made
    #: while a C call held the interpreter, the high-water mark cannot).
    step_peaks: dict[str, int]
    failures: list[str]

    def __str__(self) -> str:
        return (
            f"run process (fresh) peak {self.peak_rss / MIB:,.0f} MiB, "
            f"{self.start_rss / MIB:,.0f} MiB once loaded, "
            f"+{(self.peak_rss - self.start_rss) / MIB:,.0f} MiB during the run; "
            f"its largest forked worker {self.children_peak_rss / MIB:,.0f} MiB"
        )


def _run(engine: str, queue) -> None:
    """In the child: the curated job on ``engine``, in process, then what it measured."""
    import os

    import dagster as dg
    import psutil

    from mlsec_platform.definitions import defs

    os.environ["MLSEC_ENGINE"] = engine
    job = defs().resolve_job_def("curated")
    start_rss = psutil.Process().memory_info().rss
    instance, samples, done = dg.DagsterInstance.ephemeral(), [], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(0.05):
            samples.append((time.time(), me.memory_info().rss, _high_water()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    steps = {
        e.step_key: e.event_specific_data.duration_ms / 1000
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    }
    queue.put(
        FreshRun(
            result.success,
            seconds,
            start_rss,
            _high_water(),
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
            steps,
            _step_peaks(instance.all_logs(result.run_id), samples),
            [e.message or "" for e in result.all_events if e.is_failure],
        )
    )


def _high_water() -> int:
    """The process's peak resident memory, from ``VmHWM``: it belongs to the address space, so
    it starts afresh at ``exec``. ``getrusage``'s ``ru_maxrss`` does not: it keeps what the
    spawning fork held before its ``exec`` (the benchmark's process with Raw seeded in it,
    2 GB at 300k orders), and reported that as this process's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise OSError("no VmHWM in /proc/self/status (Linux only)")


def _step_peaks(logs, samples: list[tuple[float, int, int]]) -> dict[str, int]:
    """step key -> the high-water mark at the first sample after its end."""
    peaks = {}
    for entry in logs:
        kind = entry.dagster_event_type
        if kind is not None and entry.step_key and kind.value in ("STEP_SUCCESS", "STEP_FAILURE"):
            after = [m for t, _, m in samples if t >= entry.timestamp]
            peaks[entry.step_key] = after[0] if after else _high_water()
    return peaks


def run_in_fresh_process(engine: str, on_start=None) -> FreshRun:
    """The curated job on ``engine`` in a spawned process (the environment, and so the stack's
    settings, inherited); ``on_start(pid)`` is called once it runs (to sample it from here)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_run, args=(engine, queue), name="curated-run")
    child.start()
    if on_start is not None:
        on_start(child.pid)
    try:
        while True:  # read before join: a large result would block the child's exit
            try:
                run = queue.get(timeout=1)
                break
            except Empty:
                if not child.is_alive():
                    raise SystemExit(f"the run process died ({child.exitcode})") from None
    finally:
        child.join()
    return run
