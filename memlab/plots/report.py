"""One page per experiment: what it is, every figure, how far the grid got, the results table,
every failure with its traceback, and where and with what the results were computed.

    python plot.py --name moons --format html      # plots/moons/index.html (+ one PNG per plot)

The page is one self-contained HTML file (inline CSS and JavaScript, no network at view time)
with the figures and a copy of the results CSV beside it, so `scp -r plots/moons .` brings
everything a laptop needs.  The table sorts (click a column) and filters (type `> 0.5`,
`<= 3`, `1..2`, `=thres` or any text under a column); the row under the header summarizes the
rows shown.  The page reads the URL fragment too: `index.html#sort=score:desc&filter=n_iter:>100`.
"""
from __future__ import annotations

import html
import json
import math
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from memlab import io
from memlab.store import provenance

MAX_ROWS = 20_000        # rows embedded as they are; above, one row per grid point (means over repeats)
REPEAT_COLUMNS = ("restart", "seed", "corrupt_seed")
MAX_FAILURES = 200       # failures shown in full; the rest are counted by message


def esc(v) -> str:
    return html.escape(str(v), quote=True)


# --------------------------------------------------------------------------------- the grid ---

def grid_status(exp, state, df: pd.DataFrame | None) -> dict:
    """Trials done, failed and pending in the current grid, and records outside it.

    Done: the trials in results/NAME.csv (the merge keeps only the current grid's).  A failed
    record counts when the grid still holds its trial (its key is that of the grid point at its
    `_index`).  Only the failed records' keys are computed, so this stays fast for big grids.
    """
    total = 0 if exp.plot_only else len(exp)
    merged = set(df["_key"]) if df is not None and "_key" in df else set()
    done = sum(1 for k in merged if k in state.ok)
    failed = [rec for rec in state.failed.values() if _in_grid(exp, rec, total)]
    unmerged = sum(1 for k in state.ok if k not in merged)
    return {"total": total, "done": done, "failed": len(failed), "pending": max(0, total - done - len(failed)),
            "unmerged": unmerged, "failures": failed}


def _in_grid(exp, rec, total: int) -> bool:
    # The key as Experiment.trials() computes it, for one grid point (not all 127,500).
    i = rec.get("_index")
    if not isinstance(i, int) or not 0 <= i < total:
        return False
    return exp.trial_at(i).key == rec.get("key")


def provenance_summary(state) -> dict:
    """git commits, dirty flags, hosts, package versions and the time span of every record."""
    commits, dirty, hosts, versions = Counter(), 0, Counter(), {}
    first, last, busy, n = math.inf, -math.inf, 0.0, 0
    for rec in (*state.ok.values(), *state.failed.values()):
        prov = rec.get("prov") or {}
        commits[prov.get("git") or "(not a git checkout)"] += 1
        dirty += bool(prov.get("dirty"))
        hosts[prov.get("host") or rec.get("host") or "?"] += 1
        for k, v in (prov.get("versions") or {}).items():
            versions.setdefault(k, Counter())[v] += 1
        started, seconds = rec.get("started"), rec.get("seconds") or 0.0
        if isinstance(started, (int, float)):
            first, last = min(first, started), max(last, started + seconds)
        busy += seconds
        n += 1
    return {"records": n, "commits": commits, "dirty": dirty, "hosts": hosts, "versions": versions,
            "first": first if n else None, "last": last if n else None, "trial_seconds": busy}


# ----------------------------------------------------------------------------- the table ---

def table_payload(exp, df: pd.DataFrame | None) -> dict:
    """The rows the page embeds: all of them, or one per grid point when there are too many."""
    if df is None or df.empty:
        return {"columns": [], "rows": [], "note": "no results yet", "params": []}
    params = sorted({k for g in exp.param_grid for k in g}) if not exp.plot_only else []
    note = f"{len(df):,} trials (every row of results/{exp.name}.csv)"
    shown = df.drop(columns=[c for c in ("_key", "_artifacts") if c in df.columns])
    if len(shown) > MAX_ROWS:
        repeats = [c for c in REPEAT_COLUMNS if c in shown.columns]
        by = [c for c in params if c in shown.columns and c not in repeats]
        if repeats and by:
            numeric = shown.drop(columns=by + repeats + ["_index"], errors="ignore")
            numeric = numeric.apply(lambda s: s.astype(float) if s.dtype == bool else s)
            numeric = numeric.select_dtypes("number")
            grouped = pd.concat([shown[by], numeric], axis=1).groupby(by, dropna=False)
            shown = grouped.mean().reset_index()
            shown.insert(len(by), "trials", grouped.size().to_numpy())
            note = (f"{len(df):,} trials, shown as {len(shown):,} grid points: means over "
                    f"{', '.join(repeats)} (every trial is in results.csv beside this page)")
        if len(shown) > MAX_ROWS:
            note += f"; the first {MAX_ROWS:,} rows"
            shown = shown.iloc[:MAX_ROWS]
    columns = [str(c) for c in shown.columns]
    kinds = ["num" if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
             else "text" for c in shown.columns]
    # pandas writes the rows (NaN as null, 6 significant digits): fast enough for 20,000 rows
    rows = shown.replace([np.inf, -np.inf], np.nan).to_json(orient="values", double_precision=6)
    return {"columns": columns, "kinds": kinds, "rows": RawJSON(rows), "note": note, "params": params}


class RawJSON(str):
    """A JSON text to embed as it is."""


def to_json(payload: dict) -> str:
    """json.dumps of the table payload, with its rows (already JSON) spliced in."""
    rows = payload.get("rows")
    if isinstance(rows, RawJSON):
        text = json.dumps({**payload, "rows": "@ROWS@"}, separators=(",", ":"), allow_nan=False)
        return text.replace('"@ROWS@"', rows, 1)
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


# ------------------------------------------------------------------------------ sections ---

def _when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t is not None else "-"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def section_figures(figures) -> str:
    if not figures:
        return "<p>No plots declared.</p>"
    out = []
    for f in figures:
        name, kind = esc(f.spec["name"]), esc(f.spec["type"])
        if f.error:
            out.append(f'<figure class="failed" id="fig-{name}"><div class="error"><b>{name}</b> ({kind}) '
                       f'failed:<pre>{esc(f.error)}</pre></div></figure>')
            continue
        others = [p for p in sorted(f.path.parent.glob(f"{f.path.stem}.*"))
                  if p.suffix in (".pdf", ".svg") and p != f.path]
        links = " ".join(f'<a href="{esc(p.name)}">{esc(p.suffix[1:])}</a>' for p in others)
        caption = "".join(f"<br><span>{esc(c)}</span>" for c in f.caption)
        out.append(f'<figure id="fig-{name}"><a href="{esc(f.path.name)}"><img src="{esc(f.path.name)}" '
                   f'alt="{name}" loading="eager"></a><figcaption><b>{name}</b> <i>{kind}</i> {links}'
                   f'{caption}</figcaption></figure>')
    return '<div class="figures">' + "".join(out) + "</div>"


def section_grid(status: dict) -> str:
    total = max(status["total"], 1)
    bar = "".join(f'<span class="{k}" style="width:{100 * status[k] / total:.3f}%"></span>'
                  for k in ("done", "failed", "pending"))
    outside = (f"<p>{status['unmerged']:,} finished trials are not in the results table: trials no longer "
               f"in the grid (kept on disk, left out), or finished since the last merge "
               f"(<code>python run.py --name NAME --collect</code>).</p>" if status["unmerged"] else "")
    return (f'<div class="bar">{bar}</div><table class="kv"><tr><th>trials</th><td>{status["total"]:,}</td></tr>'
            f'<tr><th>done</th><td id="n-done">{status["done"]:,}</td></tr>'
            f'<tr><th>failed</th><td id="n-failed">{status["failed"]:,}</td></tr>'
            f'<tr><th>pending</th><td id="n-pending">{status["pending"]:,}</td></tr></table>{outside}')


def section_failures(failures: list) -> str:
    if not failures:
        return "<p>No trial failed.</p>"
    kinds = Counter(f"{(r.get('error') or {}).get('type', '?')}: {(r.get('error') or {}).get('message', '')}"[:200]
                    for r in failures)
    head = "<table class='kv'>" + "".join(f"<tr><th>{n}</th><td>{esc(m)}</td></tr>"
                                          for m, n in kinds.most_common(20)) + "</table>"
    items = []
    for rec in sorted(failures, key=lambda r: r.get("_index", 0))[:MAX_FAILURES]:
        err = rec.get("error") or {}
        params = ", ".join(f"{k} = {v}" for k, v in (rec.get("params") or {}).items())
        items.append(f"<details><summary>[{esc(rec.get('_index'))}] {esc(err.get('type', '?'))}: "
                     f"{esc(err.get('message', ''))[:300]} <small>({esc(params)})</small></summary>"
                     f"<pre>{esc(err.get('traceback', ''))}</pre></details>")
    more = (f"<p>... and {len(failures) - MAX_FAILURES:,} more (run.py --name NAME --status lists them).</p>"
            if len(failures) > MAX_FAILURES else "")
    return head + "".join(items) + more


def _counts(counter: Counter) -> str:
    return ", ".join(f"{esc(k)} ({n:,})" for k, n in counter.most_common())


def section_provenance(prov: dict, now: dict) -> str:
    if not prov["records"]:
        return "<p>No records yet.</p>"
    versions = "".join(f"<tr><th>{esc(k)}</th><td>{_counts(v)}</td></tr>" for k, v in sorted(prov["versions"].items()))
    span = (prov["last"] - prov["first"]) if prov["first"] is not None else 0.0
    return (f"<table class='kv'><tr><th>git commits</th><td>{_counts(prov['commits'])}</td></tr>"
            f"<tr><th>uncommitted changes</th><td>{prov['dirty']:,} of {prov['records']:,} trials ran in a "
            f"dirty checkout</td></tr><tr><th>hosts</th><td>{_counts(prov['hosts'])}</td></tr>{versions}"
            f"<tr><th>time span</th><td>{_when(prov['first'])} to {_when(prov['last'])} ({_duration(span)}; "
            f"{_duration(prov['trial_seconds'])} of trial time)</td></tr>"
            f"<tr><th>this page</th><td>written {_when(time.time())} at git {esc(now.get('git'))}"
            f"{' (dirty)' if now.get('dirty') else ''} on {esc(now.get('host'))}</td></tr></table>"
            f"<p class='small'>Counts are trials (records); a trial's record holds its own provenance.</p>")


# ---------------------------------------------------------------------------------- page ---

def write_report(exp, store, figures, out_dir: Path, df: pd.DataFrame | None) -> Path:
    """Write out_dir/index.html (and a copy of the results CSV beside it); returns its path."""
    t0 = time.perf_counter()
    state = store.state()
    status = grid_status(exp, state, df)
    table = table_payload(exp, df)
    if store.csv_path.exists():
        with io.atomic_path(out_dir / "results.csv", suffix=".csv") as tmp:
            shutil.copyfile(store.csv_path, tmp)
    sections = [
        ("figures", "Figures", section_figures(figures)),
        ("grid", "Grid", section_grid(status)),
        ("results", "Results", f'<p class="small" id="table-note">{esc(table["note"])}'
                               + (' &middot; <a href="results.csv">results.csv</a>' if store.csv_path.exists() else "")
                               + '</p><div id="table"></div>'),
        ("failures", f"Failures ({status['failed']:,})", section_failures(status["failures"])),
        ("provenance", "Provenance", section_provenance(provenance_summary(state), provenance())),
    ]
    trial = f"trial <code>{esc(exp.trial_name)}</code>, " if exp.trial_name else ""
    body = "".join(f'<section id="{k}"><h2>{t}</h2>{h}</section>' for k, t, h in sections)
    nav = " ".join(f'<a href="#{k}">{t}</a>' for k, t, _ in sections)
    data = to_json(table).replace("</", "<\\/")
    page = fill(PAGE, title=esc(exp.name), name=esc(exp.name), description=esc(exp.description or ""),
                trial=trial, file=esc(exp.path.name), nav=nav, body=body, css=CSS, js=JS,
                seconds=f"{time.perf_counter() - t0:.2f}", data=data)
    path = out_dir / "index.html"
    io.write_text(path, page)
    return path


def fill(template: str, **values) -> str:
    """Put each value where the template says {{name}} (CSS and JS braces stay as they are);
    one pass over the template, so nothing inside a value is ever read as a placeholder."""
    import re
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}: memlab report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{{css}}</style></head>
<body><header><h1>{{name}}</h1><p>{{description}}</p><p class="small">{{trial}}{{file}}</p><nav>{{nav}}</nav></header>
<main>{{body}}</main><footer class="small">written by memlab's plot.py in {{seconds}} s</footer>
<script type="application/json" id="data">{{data}}</script><script>{{js}}</script></body></html>
"""

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header,main,footer{max-width:1400px;margin:0 auto;padding:0 16px}header h1{margin:12px 0 4px}
nav a{margin-right:12px}section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:14px 0;padding:8px 14px}
h2{font-size:17px;margin:6px 0 10px}.small{color:#666;font-size:12px}code{background:#f1f1f1;padding:0 3px}
.figures{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0;max-width:440px;border:1px solid #eee;padding:6px;background:#fff}
figure img{max-width:100%;max-height:360px;display:block;margin:auto}figcaption{font-size:12px;color:#444;margin-top:4px}
figcaption span{color:#666}.failed .error{background:#fff0f0;border:1px solid #e99;padding:6px;font-size:12px}
pre{white-space:pre-wrap;font-size:11px;background:#f6f6f6;padding:6px;overflow:auto;max-height:320px}
.bar{display:flex;height:14px;border-radius:3px;overflow:hidden;background:#eee;margin:4px 0 8px}
.bar .done{background:#3a9d5d}.bar .failed{background:#d64545}.bar .pending{background:#c8c8c8}
table.kv th{text-align:left;padding-right:14px;vertical-align:top;font-weight:600}
#table table{border-collapse:collapse;font-size:12px;width:100%}#table th,#table td{border-bottom:1px solid #eee;padding:2px 6px;text-align:right;white-space:nowrap}
#table th{position:sticky;top:0;background:#f4f4f4;cursor:pointer;user-select:none}#table td.text{text-align:left}
#table tr.filters th,#table tr.summary td{background:#fbfbfb;cursor:default;font-weight:normal}
#table tr.summary td{color:#555;font-size:11px;white-space:normal}#table input{width:90%;min-width:50px;font-size:11px}
#table .wrap{max-height:640px;overflow:auto;border:1px solid #eee}th.asc:after{content:" \\25B2"}th.desc:after{content:" \\25BC"}
details summary{cursor:pointer;font-size:13px}details{margin:3px 0}
"""

JS = r"""
(function(){
const data = JSON.parse(document.getElementById('data').textContent);
const cols = data.columns, kinds = data.kinds || [], all = data.rows;
const root = document.getElementById('table');
let order = null, desc = false, filters = cols.map(() => ''), limit = 500;
function fmt(v){ if (v === null || v === undefined) return ''; if (typeof v === 'number') return String(+v.toPrecision(6)); return String(v); }
function test(expr, v){
  expr = expr.trim(); if (!expr) return true;
  const m = expr.match(/^(<=|>=|!=|<|>|=)\s*(.+)$/), r = expr.match(/^(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)$/);
  if (r) { return typeof v === 'number' && v >= +r[1] && v <= +r[2]; }
  if (m) { const a = m[2].trim(), n = Number(a), num = typeof v === 'number' && !isNaN(n);
    const x = num ? v : fmt(v), y = num ? n : a;
    return {'<': x < y, '>': x > y, '<=': x <= y, '>=': x >= y, '=': x == y, '!=': x != y}[m[1]]; }
  return fmt(v).toLowerCase().includes(expr.toLowerCase());
}
function rows(){
  let out = all.filter(r => filters.every((f, i) => test(f, r[i])));
  if (order !== null) { const i = order, s = desc ? -1 : 1;
    out.sort((a, b) => { const x = a[i], y = b[i];
      if (x === y) return 0; if (x === null) return 1; if (y === null) return -1;
      return (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) * s; }); }
  return out;
}
function summary(shown, i){
  const v = shown.map(r => r[i]).filter(x => x !== null && x !== undefined);
  if (!v.length) return 'empty';
  if (v.every(x => typeof x === 'number')) { let lo = Infinity, hi = -Infinity, s = 0;
    for (const x of v) { lo = Math.min(lo, x); hi = Math.max(hi, x); s += x; }
    return 'min ' + fmt(lo) + '<br>mean ' + fmt(s / v.length) + '<br>max ' + fmt(hi); }
  const c = new Map(); for (const x of v) c.set(String(x), (c.get(String(x)) || 0) + 1);
  const top = [...c.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
  return c.size + ' distinct<br>' + top.map(([k, n]) => esc(k) + ' (' + n + ')').join('<br>');
}
function esc(s){ return String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
function draw(){
  const shown = rows(), head = cols.map((c, i) => '<th data-i="' + i + '" class="' + (order === i ? (desc ? 'desc' : 'asc') : '') +
    '" title="click to sort">' + esc(c) + (data.params.includes(c) ? '' : '') + '</th>').join('');
  const fl = cols.map((c, i) => '<th><input data-i="' + i + '" value="' + esc(filters[i]) + '" placeholder="filter"></th>').join('');
  const sm = cols.map((c, i) => '<td>' + summary(shown, i) + '</td>').join('');
  const body = shown.slice(0, limit).map(r => '<tr>' + r.map((v, i) => '<td class="' + (kinds[i] || '') + '">' + esc(fmt(v)) + '</td>').join('') + '</tr>').join('');
  const more = shown.length > limit ? '<p class="small">showing ' + limit + ' of ' + shown.length + ' rows <button id="more">show more</button></p>' : '<p class="small">' + shown.length + ' rows</p>';
  root.innerHTML = '<div class="wrap"><table><thead><tr class="names">' + head + '</tr><tr class="filters">' + fl +
    '</tr><tr class="summary">' + sm + '</tr></thead><tbody>' + body + '</tbody></table></div>' + more;
  root.querySelectorAll('tr.names th').forEach(th => th.onclick = () => sortBy(+th.dataset.i));
  root.querySelectorAll('input').forEach(inp => inp.onchange = () => { filters[+inp.dataset.i] = inp.value; draw(); });
  const m = document.getElementById('more'); if (m) m.onclick = () => { limit *= 4; draw(); };
  document.body.dataset.rows = shown.length;
  document.body.dataset.sorted = order === null ? '' : cols[order] + (desc ? ':desc' : ':asc');
}
function sortBy(i){ if (order === i) desc = !desc; else { order = i; desc = false; } draw(); }
window.memlabSortBy = sortBy;
if (!cols.length) { root.innerHTML = '<p>' + esc(data.note) + '</p>'; }
else {
  for (const part of decodeURIComponent(location.hash.slice(1)).split('&')) {
    const e = part.indexOf('='); if (e < 0) continue;
    const k = part.slice(0, e), v = part.slice(e + 1), j = v.indexOf(':');
    const name = j < 0 ? v : v.slice(0, j), arg = j < 0 ? '' : v.slice(j + 1), i = cols.indexOf(name);
    if (i < 0) continue;
    if (k === 'sort') { order = i; desc = arg === 'desc'; }
    if (k === 'filter') filters[i] = arg;
  }
  draw();
  if (location.hash.includes('click=')) {   // a real click on a header, as a reader would (the browser test)
    const name = decodeURIComponent(location.hash.split('click=')[1].split('&')[0]), i = cols.indexOf(name);
    if (i >= 0) root.querySelector('tr.names th[data-i="' + i + '"]').click();
  }
}
function figures(){ const imgs = [...document.querySelectorAll('figure img')];
  document.body.dataset.figures = imgs.length;
  document.body.dataset.figuresLoaded = imgs.filter(im => im.complete && im.naturalWidth > 0).length; }
window.addEventListener('load', figures); figures();
})();
"""
