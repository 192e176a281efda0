"""One executor seam for berg's independent tasks: ``local`` (in this process), ``debug`` (submitit's in-process debug
executor) or ``slurm`` (a Slurm job array through submitit's ``AutoExecutor``).

berg cuts the work into tasks (a module-level function and one picklable argument per task), ``run_tasks`` runs
them and returns their results in task order. A failed task is reported with its label (shard/cell), its log file
and its one-line error; ``retries`` resubmits failed tasks; when some still fail, ``TasksFailedError`` names them
(the finished ones keep their outputs, so running the same command again runs only the rest). While a Slurm array
runs, a notice line reports tasks done / running / pending whenever that changes.

submitit is imported only when a ``debug`` or ``slurm`` run starts (the optional extra ``berg-core[slurm]``).
Nothing is sent to Slurm without ``mode="slurm"``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from berg_core.console import notice
from berg_core.errors import BergError, InvalidParameterError

MODES = ("local", "debug", "slurm")
#: Slurm states of a task that still may produce a result
_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
           "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
#: seconds a task may be out of the queue (or finished) without its result file before it counts as lost
LOST_AFTER_S = 15.0


class _JobPaths(Protocol):
    """What berg reads of a ``submitit`` job's ``paths``."""

    @property
    def stderr(self) -> Path: ...

    @property
    def result_pickle(self) -> Path: ...


class _Job(Protocol):
    """What berg uses of a ``submitit.Job``: its id (``ARRAY_TASK`` for an array task), files, outcome and cancel."""

    @property
    def job_id(self) -> str: ...

    @property
    def paths(self) -> _JobPaths: ...

    def exception(self) -> BaseException | None: ...

    def result(self) -> Any: ...

    def results(self) -> list[Any]: ...

    def cancel(self, check: bool = ...) -> None: ...


class _ArrayExecutor(Protocol):
    """What berg uses of a ``submitit.AutoExecutor``: one job per item, submitted as one array."""

    def map_array(self, fn: Callable[[Any], Any], items: list[Any]) -> list[_Job]: ...


class TasksFailedError(BergError):
    """Some tasks failed (after the retries); ``failures`` holds one ``TaskFailure`` each."""

    def __init__(self, message: str, failures: list[TaskFailure]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass(frozen=True)
class TaskFailure:
    """One failed task: its label, the one-line error and its log file (None for local tasks)."""

    index: int
    label: str
    error: str
    log: Path | None

    def line(self) -> str:
        where = f"; log: {self.log}" if self.log else ""
        return f"{self.label} failed: {self.error}{where}"


@dataclass
class ExecutorConfig:
    """Where tasks run and, for Slurm, what each array task asks for.

    ``folder``: submitit's logs and pickles (``%j`` files per task); ``time_min``: wall-time limit per task, minutes;
    ``mem``: Slurm memory per node, e.g. ``"16G"``; ``slurm_options``: extra ``#SBATCH --KEY=VALUE`` lines.
    """

    mode: str = "local"
    folder: Path | None = None
    partition: str | None = None
    time_min: int | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    array_parallelism: int | None = None
    slurm_options: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    poll_s: float = 2.0
    name: str = "berg"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidParameterError(f"--executor must be one of {', '.join(MODES)}, got {self.mode!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InvalidParameterError(f"--retries must be 0 or more, got {self.retries!r}")
        for flag, value in (("--time", self.time_min), ("--gpus-per-task", self.gpus_per_task),
                            ("--cpus-per-task", self.cpus_per_task), ("--array-parallelism", self.array_parallelism)):
            if value is not None and value < (0 if flag == "--gpus-per-task" else 1):
                raise InvalidParameterError(f"{flag} must be {'0' if flag == '--gpus-per-task' else '1'} or more, got {value}")
        if self.mode != "local" and self.folder is None:
            raise InvalidParameterError(f"--executor {self.mode} needs a folder for its logs")

    def submitit_parameters(self) -> dict[str, Any]:
        """``AutoExecutor.update_parameters`` keywords (the ``slurm_`` ones are ignored by the debug executor)."""
        params: dict[str, Any] = {"name": self.name}
        if self.time_min is not None:
            params["timeout_min"] = self.time_min
        if self.cpus_per_task is not None:
            params["cpus_per_task"] = self.cpus_per_task
        slurm = {"slurm_partition": self.partition, "slurm_gpus_per_task": self.gpus_per_task, "slurm_mem": self.mem,
                 "slurm_array_parallelism": self.array_parallelism,
                 "slurm_additional_parameters": dict(self.slurm_options) or None}
        params.update({k: v for k, v in slurm.items() if v is not None})
        return params


# ------------------------------------------------------------------------------------ command line


def parse_time_min(text: str) -> int:
    """Slurm's time forms as whole minutes: ``90``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"--time {text!r}: use minutes (90) or [D-]HH:MM:SS as Slurm does")
    days = m.group(1)
    parts = [int(g) for g in m.group(2, 3, 4) if g is not None]
    # seconds per part: minutes, MM:SS or HH:MM:SS without days; HH, HH:MM or HH:MM:SS after "D-"
    units = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(parts)] if days is None else (3600, 60, 1)
    seconds = (int(days) * 86400 if days is not None else 0) + sum(x * unit for x, unit in zip(parts, units))
    return max(1, -(-seconds // 60))


def _slurm_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
        raise argparse.ArgumentTypeError(f"--slurm-option needs KEY=VALUE (an sbatch option), got {text!r}")
    return key.replace("-", "_"), value.strip()


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """``--executor local|debug|slurm``, ``--retries`` and the Slurm pass-through options (one group)."""
    g = p.add_argument_group("executor (scale-out; nothing goes to Slurm without --executor slurm)")
    g.add_argument("--executor", choices=MODES, default="local",
                   help="local: in this process (default); debug: submitit's in-process debug executor; slurm: a Slurm job array")
    g.add_argument("--retries", type=int, default=0, metavar="K", help="resubmit a failed task up to K times (default 0)")
    g.add_argument("--partition", default=None, help="Slurm partition")
    g.add_argument("--time", type=parse_time_min, default=None, metavar="T", help="wall time per task: minutes or [D-]HH:MM:SS")
    g.add_argument("--gpus-per-task", type=int, default=None, metavar="N", help="GPUs per array task (e.g. 1)")
    g.add_argument("--cpus-per-task", type=int, default=None, metavar="N")
    g.add_argument("--mem", default=None, help="memory per task's node, as Slurm writes it (e.g. 16G)")
    g.add_argument("--array-parallelism", type=int, default=None, metavar="N", help="at most N array tasks running at once")
    g.add_argument("--slurm-option", type=_slurm_option, action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. --slurm-option account=mylab --slurm-option qos=high (repeatable)")


def executor_config(args: argparse.Namespace, folder: Path | None, name: str) -> ExecutorConfig:
    """The ``ExecutorConfig`` of parsed ``add_executor_options`` flags (one-line errors); logs go to ``folder / "logs"``.

    Call it with ``folder=None`` first to check the flags before any work (a local run needs no folder).
    """
    slurm_only = [flag for flag, value in (("--partition", args.partition), ("--time", args.time), ("--gpus-per-task", args.gpus_per_task),
                                           ("--mem", args.mem), ("--array-parallelism", args.array_parallelism),
                                           ("--slurm-option", args.slurm_option)) if value]
    if slurm_only and args.executor != "slurm":
        raise InvalidParameterError(f"{slurm_only[0]} is a Slurm option; add --executor slurm (or leave it out)")
    return ExecutorConfig(mode=args.executor if folder is not None else "local", folder=None if folder is None else Path(folder) / "logs", partition=args.partition,
                          time_min=args.time, gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task, mem=args.mem,
                          array_parallelism=args.array_parallelism, slurm_options=dict(args.slurm_option), retries=args.retries,
                          name=name)


# ------------------------------------------------------------------------------------ running


def one_line(exc: BaseException) -> str:
    """The one-line error of a task: a BergError's message, else ``Type: message``; for a remote traceback its last line."""
    text = str(exc).strip()
    trace = re.search(r"with trace:\n-+\n(.*?)\n-+\n", text, flags=re.S)  # submitit's FailedJobError
    if trace:
        lines = [ln for ln in trace.group(1).splitlines() if ln.strip() and not ln.startswith(" ")]
        text = lines[-1].strip() if lines else text
        return re.sub(r"^berg_core\.[\w.]+\.(\w+Error): ", "", text)
    first = text.splitlines()[0] if text else ""
    return first if isinstance(exc, BergError) else f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def run_tasks(fn: Callable[[Any], Any], items: Sequence[Any], labels: Sequence[str], config: ExecutorConfig) -> list[Any]:
    """Run ``fn(item)`` for every item where ``config`` says; the results in item order.

    ``fn`` must be a module-level function and each item picklable (Slurm tasks receive them through submitit's
    pickles). Failed tasks are retried ``config.retries`` times, then ``TasksFailedError`` lists them.
    """
    if len(items) != len(labels):
        raise ValueError("one label per task")
    results: dict[int, Any] = {}
    todo = list(range(len(items)))
    failures: list[TaskFailure] = []
    for attempt in range(config.retries + 1):
        if not todo:
            break
        if attempt:
            notice(f"retrying {len(todo)} failed task(s) (retry {attempt} of {config.retries})")
        done, failures = (_run_local if config.mode == "local" else _run_submitit)(fn, items, labels, todo, config)
        results.update(done)
        for failure in failures:
            notice(failure.line())
        todo = [f.index for f in failures]
    if failures:
        first = failures[0]
        raise TasksFailedError(f"{len(failures)} of {len(items)} tasks failed ({first.line()}); the finished ones are kept: "
                               "run the same command again to run only the rest", failures)
    return [results[i] for i in range(len(items))]


def _run_local(fn: Callable[[Any], Any], items: Sequence[Any], labels: Sequence[str], todo: list[int],
               config: ExecutorConfig) -> tuple[dict[int, Any], list[TaskFailure]]:
    done: dict[int, Any] = {}
    failures: list[TaskFailure] = []
    for i in todo:
        try:
            done[i] = fn(items[i])
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failed task does not stop the others
            failures.append(TaskFailure(i, labels[i], one_line(exc), None))
    return done, failures


def _executor(config: ExecutorConfig) -> _ArrayExecutor:
    try:
        import submitit
    except ImportError as exc:
        raise BergError(f"--executor {config.mode} needs submitit: pip install 'berg-core[slurm]'") from exc
    assert config.folder is not None
    config.folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=str(config.folder / "%j"), cluster=config.mode)
    executor.update_parameters(**config.submitit_parameters())
    array_executor: _ArrayExecutor = executor
    return array_executor


def _run_submitit(fn: Callable[[Any], Any], items: Sequence[Any], labels: Sequence[str], todo: list[int],
                  config: ExecutorConfig) -> tuple[dict[int, Any], list[TaskFailure]]:
    executor = _executor(config)
    try:
        jobs = executor.map_array(fn, [items[i] for i in todo])
    except Exception as exc:  # sbatch refused (bad partition, option, ...): its message is the user's answer
        raise BergError(f"Slurm refused the job array: {one_line(exc)}") from exc
    if config.mode == "slurm":
        notice(f"submitted {len(jobs)} task(s) as Slurm job {jobs[0].job_id.split('_')[0]}; logs in {config.folder}")
    done: dict[int, Any] = {}
    failures: list[TaskFailure] = []
    try:
        outcomes = _wait_debug(jobs) if config.mode == "debug" else _wait_slurm(jobs, config)
    except KeyboardInterrupt:  # Ctrl-C: cancel what is still queued or running (finished shards stay for the rerun)
        if config.mode == "slurm":
            for job in jobs:
                with contextlib.suppress(Exception):
                    job.cancel(check=False)
            notice(f"cancelled Slurm job {jobs[0].job_id.split('_')[0]}; run the same command again to resume")
        raise
    for i, job, (ok, value) in zip(todo, jobs, outcomes):
        if ok:
            done[i] = value
        else:
            failures.append(TaskFailure(i, labels[i], value, _log_path(job)))
    return done, failures


def _log_path(job: _Job) -> Path | None:
    try:
        return Path(job.paths.stderr)
    except Exception:  # a job whose id is not known yet
        return None


def _wait_debug(jobs: list[_Job]) -> list[tuple[bool, Any]]:
    """Debug jobs run here, one by one, when asked for their outcome (``exception`` first: ``results`` would start pdb)."""
    import traceback

    out = []
    for n, job in enumerate(jobs, start=1):
        exc = job.exception()
        if exc is not None:  # the debug executor writes no log of its own here: the traceback goes where a Slurm log would
            log = Path(job.paths.stderr)
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        out.append((False, one_line(exc)) if exc is not None else (True, job.results()[0]))
        notice(f"tasks: {n} done, 0 running, {len(jobs) - n} pending")
    return out


def _queue_states(array_ids: set[str]) -> dict[str, str] | None:
    """``{task id: state}`` of the arrays' tasks still in the Slurm queue (finished ones stay ``MinJobAge`` seconds)."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i %T", "-j", ",".join(sorted(array_ids))],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None if "Invalid job id" not in out.stderr else {}
    return dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)


def _wait_slurm(jobs: list[_Job], config: ExecutorConfig) -> list[tuple[bool, Any]]:
    """Poll until every task has a result file or has left the queue without one (killed, cancelled, preempted)."""
    outcomes: dict[int, tuple[bool, Any]] = {}
    gone_since: dict[int, float] = {}
    arrays = {job.job_id.split("_")[0] for job in jobs}
    last = None
    while len(outcomes) < len(jobs):
        states = _queue_states(arrays)
        running = pending = 0
        for n, job in enumerate(jobs):
            if n in outcomes:
                continue
            if job.paths.result_pickle.exists():
                exc = job.exception()
                outcomes[n] = (False, one_line(exc)) if exc is not None else (True, job.result())
                continue
            state = None if states is None else states.get(job.job_id, "GONE").split()[0].rstrip("+")
            if state is None or state in _ACTIVE:
                gone_since.pop(n, None)
                running += state == "RUNNING"
                pending += state != "RUNNING"
                continue
            first = gone_since.setdefault(n, time.monotonic())
            if time.monotonic() - first > LOST_AFTER_S:
                what = "left the queue" if state == "GONE" else f"ended {state}"
                outcomes[n] = (False, f"the task {what} without a result (cancelled, preempted, out of time or memory?)")
        now = (len(outcomes), running, pending)
        if now != last:
            notice(f"tasks: {now[0]} done, {now[1]} running, {now[2]} pending")
            last = now
        if len(outcomes) < len(jobs):
            time.sleep(config.poll_s)
    return [outcomes[n] for n in range(len(jobs))]


__all__ = ["MODES", "ExecutorConfig", "TaskFailure", "TasksFailedError", "add_executor_options", "executor_config", "parse_time_min",
           "run_tasks"]
