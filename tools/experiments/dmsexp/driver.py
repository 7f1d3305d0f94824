"""Plumbing shared by the experiment drivers: one driver per work dir (a lock), a work dir
keeps the settings it was started with, a timestamped log (plus a summary file), and the
record of every invocation (wall time, steps run / skipped, failures)."""
import fcntl
import json
import os
import os.path as osp
import time
import traceback
from typing import Callable, Iterable, List, Optional, Sequence

from .steps import STATS, load_json, write_json


def check_settings(work_dir: str, exp, fixed: Iterable[str]) -> None:
    """Refuse to mix runs made with other settings (the ``fixed`` keys of ``exp``) in one
    work dir; the first invocation stores them in ``experiment.json``."""
    fixed = list(fixed)
    path = osp.join(work_dir, 'experiment.json')
    current = json.loads(json.dumps({k: exp.get(k) for k in fixed}, default=str))
    if osp.isfile(path):
        stored = load_json(path)
        changed = [k for k in fixed if stored.get(k) != current.get(k)]
        if changed:
            raise SystemExit(f'{work_dir} holds runs made with other settings ({", ".join(changed)}'
                             f'); use another --work-dir or the original config')
    else:
        write_json(path, current)


def lock_work_dir(work_dir: str):
    """One driver per work dir: a second one would train the same steps twice. Keep the
    returned handle referenced; the OS releases the lock when the process ends."""
    handle = open(osp.join(work_dir, 'driver.lock'), 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        raise SystemExit(f'another driver is running in {work_dir} (pid {handle.read().strip()}'
                         '); wait for it or stop it first') from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def make_logger(work_dir: str, tag: str = 'exp') -> Callable[..., None]:
    """``log(message, summary_line=False)``: print with a time stamp; summary lines are also
    appended to ``WORK_DIR/summary.log``."""
    summary = osp.join(work_dir, 'summary.log')

    def log(message: str, summary_line: bool = False) -> None:
        line = f'[{tag} {time.strftime("%H:%M:%S")}] {message}'
        print(line, flush=True)
        if summary_line:
            with open(summary, 'a') as f:
                f.write(line + '\n')
    return log


def run_plan(plan: Sequence[tuple], run: Callable[..., dict], result_path: Callable[..., str],
             head: Callable[..., str], line: Callable[[dict], str], log,
             after_run: Optional[Callable[[], None]] = None) -> List[tuple]:
    """Run (or skip, when its result file exists) every run of ``plan`` in order.

    Each plan entry is the argument tuple of ``run``/``result_path``/``head``; a failing run
    is logged with its traceback and skipped (it resumes next time); ``after_run()`` follows
    each new result (keeps the docs current if a long job is cut off). Returns the failures.
    """
    failures = []
    for i, key in enumerate(plan, 1):
        title = f'[{i}/{len(plan)}] {head(*key)}'
        path = result_path(*key)
        if osp.isfile(path):
            log(f'{title}: done earlier: {line(load_json(path))}', summary_line=True)
            continue
        log(f'{title}: running')
        try:
            result = run(*key)
        except Exception:  # noqa: BLE001 -- keep going; the run resumes next time
            log(f'{title}: FAILED\n{traceback.format_exc()}', summary_line=True)
            failures.append(tuple(key))
            continue
        log(f'{title}: {line(result)}', summary_line=True)
        if after_run is not None:
            try:
                after_run()
            except Exception:  # noqa: BLE001 -- a report problem must not stop the training
                log(f'writing the report failed:\n{traceback.format_exc()}')
    return failures


def record_invocation(work_dir: str, start: float, failed: List[list]) -> None:
    """Append this invocation (start, wall seconds, steps run and skipped, failures) to
    ``WORK_DIR/invocations.json``."""
    path = osp.join(work_dir, 'invocations.json')
    invocations = load_json(path)['invocations'] if osp.isfile(path) else []
    invocations.append(dict(started=time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(start)),
                            wall_seconds=time.time() - start,
                            steps_executed=STATS['executed'], steps_skipped=STATS['skipped'],
                            failed=[list(f) for f in failed]))
    write_json(path, dict(invocations=invocations))
