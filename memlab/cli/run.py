"""Run an experiment's parameter grid: every pending trial, locally or on a cluster.

    python run.py --name moons                       # local, joblib, 1 worker
    python run.py --name moons --tasks -1            # local, every core
    python run.py --name mnist --dry-run             # validate, count, list datasets; run nothing
    python run.py --name mnist --backend sge --tasks 20 -- -q all.q -l gpu=1
    python run.py --name moons_demo --set n_iter=20,40 --set max_bias=0.5 --as moons_quick
    python run.py --name moons_demo --show 17       # one trial: parameters, status, result, traceback

Reads experiments/NAME.json, skips trials already finished (so the same command resumes),
writes one record per finished trial and merges them into results/NAME.csv.
Exit status: 0 all trials done, 1 some failed or were interrupted, 2 bad input.
"""
from __future__ import annotations

import argparse
import sys

from memlab import backends
from memlab.errors import UserError

CLUSTER_ONLY = {"gpus": "--gpus", "mem": "--mem", "time": "--time", "queue": "--queue", "slots": "--slots",
                "no_wait": "--no-wait"}


def parse(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    scheduler_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, scheduler_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Arguments after `--` go to qsub/sbatch untouched.")
    ap.add_argument("--name", required=True, help="experiment: experiments/NAME.json (or a path to a .json file)")
    ap.add_argument("--backend", default="joblib", choices=sorted(backends.BACKENDS),
                    help="where trials run (default joblib: this machine)")
    ap.add_argument("--tasks", type=int, default=1,
                    help="joblib: worker processes (-1 = every core); sge/slurm: array tasks (-1 = one per trial)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="validate, count trials, list datasets; run nothing")
    mode.add_argument("--status", action="store_true", help="print done / failed / pending and exit")
    mode.add_argument("--collect", action="store_true", help="merge the records that have arrived into the CSV")
    mode.add_argument("--show", metavar="INDEX|KEY",
                      help="print one trial: parameters, status, result, error and traceback, provenance")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUES",
                    help="replace a grid parameter's values (comma = a sweep, each value JSON or a bare word); "
                         "repeatable")
    ap.add_argument("--as", dest="store_as", metavar="NAME",
                    help="store results and plots under NAME (results/NAME.csv), apart from the main table")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="say more (each finished trial)")
    ap.add_argument("-q", "--quiet", action="count", default=0, help="say only failures and errors")
    ap.add_argument("--retry-failed", action="store_true", help="rerun trials that failed before")
    ap.add_argument("--rerun-stale", action="store_true",
                    help="rerun finished trials whose results were computed by other trial code")
    ap.add_argument("--trial-timeout", metavar="DURATION",
                    help="stop a trial that runs longer (2h, 30m, 90s, 01:30:00; overrides the file's \"timeout\")")
    ap.add_argument("--max-trials", type=int, default=None, metavar="N",
                    help="refuse a grid bigger than this (default 10,000,000)")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first failed trial")
    ap.add_argument("--no-wait", action="store_true", help="sge/slurm: return after submitting (then --collect)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    res = ap.add_argument_group("cluster resources (override the experiment file's `resources`)")
    res.add_argument("--gpus", type=int, help="GPUs per task")
    res.add_argument("--mem", help="memory per task, e.g. 4G")
    res.add_argument("--time", help="wall-clock limit per task, e.g. 02:00:00")
    res.add_argument("--queue", help="SGE queue / SLURM partition")
    res.add_argument("--slots", "--cpus", dest="slots", type=int, help="CPU slots per task")
    args = ap.parse_args(argv)
    args.scheduler_args = scheduler_args
    if args.tasks == 0 or args.tasks < -1:
        ap.error("--tasks must be a positive number or -1")
    return args


def check_backend(args) -> None:
    """A cluster-only option given to the local backend is refused, not silently ignored."""
    if args.backend != "joblib":
        return
    given = [flag for dest, flag in CLUSTER_ONLY.items() if getattr(args, dest) not in (None, False)]
    if args.scheduler_args:
        given.append(f"-- {' '.join(args.scheduler_args)}")
    if given:
        hint = " (a time limit per trial on this machine is --trial-timeout)" if "--time" in given else ""
        raise UserError(f"{', '.join(given)}: only for a cluster backend, and this run uses --backend joblib",
                        fix=f"drop {'them' if len(given) > 1 else 'it'}, or add --backend sge (or slurm){hint}")


def main(argv=None) -> int:
    from memlab.log import pipe_safe
    return pipe_safe(_main, argv)      # `python run.py ... | head` ends quietly


def _main(argv) -> int:
    args = parse(argv)
    from memlab import log
    log.configure(args.verbose - args.quiet)
    from memlab import runner
    from memlab.config import MAX_TRIALS, load_experiment, parse_duration
    try:
        check_backend(args)
        exp = load_experiment(args.name, sets=args.sets, store_as=args.store_as)
        timeout = None if args.trial_timeout is None else \
            parse_duration(args.trial_timeout, "the command line", "--trial-timeout")
        if args.dry_run:
            return runner.dry_run(exp)
        if args.status:
            return runner.status(exp)
        if args.show is not None:
            from memlab.show import show
            return show(exp, args.show)
        opts = runner.RunOptions(
            backend=args.backend, tasks=args.tasks, retry_failed=args.retry_failed, fail_fast=args.fail_fast,
            wait=not args.no_wait, progress=not args.no_progress and not args.quiet and sys.stderr.isatty(),
            scheduler_args=args.scheduler_args, timeout=timeout, rerun_stale=args.rerun_stale,
            max_trials=args.max_trials or MAX_TRIALS,
            resources={k: v for k in ("gpus", "mem", "time", "queue", "slots")
                       if (v := getattr(args, k)) is not None})
        if args.collect:
            return runner.collect(exp, opts)
        if args.sets and not args.store_as:
            log.log.info(f"--set without --as: results/{exp.name}.csv will hold this grid (a run without --set "
                         f"restores the file's; every result is kept); --as NAME stores a variant apart")
        return runner.run(exp, opts)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:       # an unreadable or unwritable results folder, a full disk
        if isinstance(e, BrokenPipeError):
            raise
        print(f"error: cannot use {e.filename or 'a file'}: {e.strerror or e}\n  fix: check that the folder exists, "
              "is yours and has free space (or set MEMLAB_ROOT to another folder); finished trials are kept",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
