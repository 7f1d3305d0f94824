"""Plumbing shared by the experiment drivers: one driver per work dir (a lock), a work dir
keeps the settings it was started with, a timestamped log (plus a summary file), and the
record of every invocation (wall time, steps run / skipped, failures)."""
import argparse
import fcntl
import json
import os
import os.path as osp
import time
import traceback
from typing import Callable, Iterable, List, Optional, Sequence

from mmengine.config import Config, DictAction

from .steps import STATS, load_json, write_json


def add_experiment_args(parser: argparse.ArgumentParser, *, name: str, work_dir: str,
                        arms: Sequence[str], section: str, results: str, smoke: str,
                        example: str) -> argparse.ArgumentParser:
    """The options every experiment driver shares: config (``configs/experiments/NAME.py``
    and its ``_smoke`` variant), work dir, seeds, arms, config overrides, threads, report-only
    and where the report goes (``section`` of docs/results.md, ``results`` in docs/results)."""
    parser.add_argument('--config', help=f'experiment config (default: configs/experiments/'
                        f'{name}.py, or its _smoke variant with --smoke)')
    parser.add_argument('--smoke', action='store_true', help=f'CI size: {smoke}')
    parser.add_argument('--work-dir', help='where runs, checkpoints and result JSONs go '
                        f'(default: work_dirs/{work_dir}[_smoke])')
    parser.add_argument('--seeds', type=int, nargs='+', help='override the config\'s seeds')
    parser.add_argument('--arms', nargs='+', choices=arms, help='subset of arms to run')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help=f'override settings of the experiment config, e.g. {example} '
                        '(a work dir keeps the settings it was started with)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1: on shared cores two threads '
                        'spin-wait for each other and run several times slower)')
    parser.add_argument('--report-only', action='store_true',
                        help='only rebuild the report from finished runs')
    parser.add_argument('--results-md', help=f'Markdown file whose {section} section is '
                        'rewritten (default: docs/results.md; --smoke: WORK_DIR/results.md)')
    parser.add_argument('--results-dir', help=f'folder for {results} (default: docs/results; '
                        '--smoke: WORK_DIR)')
    return parser


def load_experiment_config(args, config: str, smoke_config: str, known_arms: Sequence[str],
                           list_keys: Sequence[str] = ('seeds', 'arms')) -> Config:
    """The experiment config (``--config`` or the default / smoke one) with ``--cfg-options``
    merged and the ``list_keys`` given on the command line (seeds, arms, ...) replaced."""
    exp = Config.fromfile(args.config or (smoke_config if args.smoke else config))
    if args.cfg_options:
        exp.merge_from_dict(args.cfg_options)
    for key in list_keys:
        if getattr(args, key, None):
            exp[key] = list(getattr(args, key))
    unknown = set(exp.arms) - set(known_arms)
    if unknown:
        raise SystemExit(f'unknown arms {sorted(unknown)} in the config; known: '
                         f'{tuple(known_arms)}')
    return exp


def open_work_dir(args, default_name: str, repo: str) -> str:
    """``--work-dir`` (default ``work_dirs/DEFAULT_NAME[_smoke]``) as an absolute path, created
    and, unless ``--report-only`` (reports may be rebuilt while a driver runs), locked for
    this process (see ``lock_work_dir``)."""
    name = default_name + ('_smoke' if args.smoke else '')
    work_dir = osp.abspath(args.work_dir or osp.join(repo, 'work_dirs', name))
    os.makedirs(work_dir, exist_ok=True)
    if not args.report_only:
        HELD_LOCKS.append(lock_work_dir(work_dir))  # held until the process exits
    return work_dir


def report_paths(args, work_dir: str, repo: str):
    """``(results_md, results_dir)``: ``--results-md`` / ``--results-dir``, by default
    docs/results.md and docs/results (``--smoke``: the work dir); the folder is created."""
    results_dir = args.results_dir or (work_dir if args.smoke
                                       else osp.join(repo, 'docs', 'results'))
    results_md = args.results_md or (osp.join(work_dir, 'results.md') if args.smoke
                                     else osp.join(repo, 'docs', 'results.md'))
    os.makedirs(results_dir, exist_ok=True)
    return results_md, results_dir


def reproduce_command(script: str, args, repo: str, dirs: Sequence[tuple] = ()) -> str:
    """The command line that rebuilds a report: ``script`` with ``--smoke``, the
    ``(flag, dir)`` pairs that lie inside the repository, and ``--cfg-options``."""
    parts = ['python', script] + (['--smoke'] if args.smoke else [])
    for flag, d in dirs:
        if d and osp.abspath(d).startswith(repo + os.sep):
            parts += [f'--{flag}', osp.relpath(osp.abspath(d), repo)]
    options = getattr(args, 'cfg_options', None)
    if options:
        parts += ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    return ' '.join(parts)


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


HELD_LOCKS = []


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
