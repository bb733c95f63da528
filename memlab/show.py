"""One trial, all there is to know: `python run.py --name NAME --show INDEX|KEY`.

    python run.py --name moons_demo --show 17           # by grid position (_index)
    python run.py --name moons_demo --show 176e3fca     # by key (a unique prefix will do)

Prints the trial's resolved parameters, its status (done, stale, failed, queued or running,
pending), its result, the error with its traceback, and where and with what it ran.
"""
from __future__ import annotations

import json
import time

from memlab import backends
from memlab.errors import UserError
from memlab.runner import plan
from memlab.store import Store, git_label


def find(p, which: str, name: str):
    """The trial of the grid (or, failing that, a record on disk) that INDEX or KEY names."""
    which = str(which).strip()
    if which.isdigit():
        i = int(which)
        if i >= len(p.trials):
            raise UserError(f"--show {which}: the grid of '{name}' has trials 0 to {len(p.trials) - 1}",
                            fix=f"give an _index below {len(p.trials)}, or a trial key")
        return p.trials[i], None
    in_grid = [t for t in p.trials if t.key.startswith(which)]
    if len(in_grid) == 1 or (in_grid and in_grid[0].key == which):
        return in_grid[0], None
    on_disk = sorted({k for k in (*p.state.ok, *p.state.failed) if k.startswith(which)})
    if not in_grid and len(on_disk) == 1:
        return None, on_disk[0]
    if in_grid or on_disk:
        raise UserError(f"--show {which}: {len(in_grid) or len(on_disk)} trials have keys starting so",
                        fix="give more of the key (the `_key` column), or the trial's _index")
    raise UserError(f"--show {which}: no trial of '{name}' has that index or key",
                    fix=f"give an _index from 0 to {len(p.trials) - 1}, or a key from the `_key` column "
                        f"(python run.py --name {name} --status lists the failed ones)")


def show(exp, which: str) -> int:
    if exp.plot_only:
        raise UserError(f"'{exp.name}' is a plot-only experiment: it has no trials to show", file=exp.path,
                        fix=f"python plot.py --name {exp.name} draws it")
    store = Store(exp.name)
    p = plan(exp, store)
    trial, key = find(p, which, exp.name)
    key = trial.key if trial else key
    rec = p.results.get(key) or p.state.ok.get(key) or p.state.failed.get(key)
    flying = backends.in_flight(store)
    if key in p.results or key in p.state.ok:
        status = "done" + (" (stale: computed by other trial code; --rerun-stale reruns it)" if key in p.stale else "")
    elif key in p.state.failed:
        status = "failed (--retry-failed reruns it)"
    elif key in flying:
        status = f"queued or running in {flying[key]}"
    else:
        status = "pending (not run yet)"
    where = f"trial {trial.index}" if trial else "a trial not in the grid as it is now"
    seed = trial.seed if trial else (rec or {}).get("seed")
    print(f"{exp.name}: {where} (key {key}, seed {seed}): {status}")
    params = trial.params if trial else rec["params"]
    print("parameters:")
    for k, v in params.items():
        print(f"  {k} = {json.dumps(v, default=str)}")
    if rec is None:
        return 0
    if rec.get("status") == "ok":
        print("result:")
        for k, v in rec.get("result", {}).items():
            print(f"  {k} = {json.dumps(v, default=str)}")
        series = rec.get("series")
        if series:
            n = max((len(v) for v in series.values() if isinstance(v, list)), default=0)
            print(f"series: {', '.join(series)} ({n} values; in {store.series_path})")
    else:
        err = rec.get("error", {})
        print(f"error: {err.get('type')}: {err.get('message')}")
        if err.get("traceback"):
            print(err["traceback"].rstrip())
    print_provenance(rec, store)
    return 0


def print_provenance(rec: dict, store: Store) -> None:
    prov = rec.get("prov") or {}
    started = rec.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    print("provenance:")
    print(f"  ran {when} for {rec.get('seconds', 0):.3f} s on {prov.get('host', '?')} (pid {rec.get('pid', '?')})")
    print(f"  trial {rec.get('trial') or '?'}, code {rec.get('code') or '?'}, "
          f"memlab git {git_label(prov) or '(not a git checkout)'}"
          + (f", trial module git {prov['trial_git']}{'+dirty' if prov.get('trial_dirty') else ''}"
             if prov.get("trial_git") else ""))
    versions = prov.get("versions") or {}
    if versions:
        print("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    data = rec.get("data") or {}
    if data:
        from memlab.datasets import fingerprint
        now = {name: fingerprint(name) for name in data}
        print("  data: " + ", ".join(
            f"datasets/{name}.npz {fp}" + ("" if now[name] in (None, fp) else f" (the file holds {now[name]} now: stale)")
            for name, fp in data.items()))
    print(f"  records in {store.records_dir}")
