"""Fetch the raw archives of the image datasets: download (or copy), verify, cache.

    python data.py --name mnist                   # downloads into datasets/raw/mnist/
    python data.py --name mnist --source DIR      # takes the archives from DIR (no internet needed)
    MEMLAB_MIRROR=http://host/raw python data.py --name mnist    # a mirror laid out like datasets/raw/

A file counts as fetched only once its MD5 matches the published checksum.  A download goes to
`FILE.part` and is renamed onto `FILE` only after that check, so a partial or corrupt file is never
taken for a good one; an interrupted download is resumed with an HTTP Range request (within the
same call, and again on the next run).  A file with the wrong checksum is deleted, never cached.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from memlab import io
from memlab.errors import DatasetError
from memlab.paths import DATASETS_DIR

# A base URL that replaces every canonical location: FILE of group G is fetched from MIRROR/G/FILE.
# None: read the environment variable MEMLAB_MIRROR on each call (tests set either).
MIRROR: str | None = None
TIMEOUT = 60          # seconds without data before a connection counts as dropped
ATTEMPTS = 4          # tries per URL; each one resumes where the last stopped
RETRY_WAIT = 2.0      # seconds between tries
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One published file: where it lives on the web and the checksum its publisher gives."""
    group: str               # folder under datasets/raw/ (and under a mirror): "mnist", "cifar10", ...
    name: str                # the published file name
    md5: str                 # the published MD5
    urls: tuple[str, ...]    # canonical locations, tried in order


def raw_dir() -> Path:
    return DATASETS_DIR() / "raw"


def cached_path(f: RemoteFile) -> Path:
    return raw_dir() / f.group / f.name


def md5sum(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)   # the publishers give MD5: integrity, not security
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def urls(f: RemoteFile) -> tuple[str, ...]:
    mirror = MIRROR or os.environ.get("MEMLAB_MIRROR")
    if mirror:
        return (f"{mirror.rstrip('/')}/{f.group}/{f.name}",)
    return f.urls


def fetch(f: RemoteFile, source: Path | None = None, *, dataset: str) -> Path:
    """The verified local copy of `f` in datasets/raw/: cached, copied from `source`, or downloaded."""
    target = cached_path(f)
    if target.exists():
        if md5sum(target) == f.md5:
            return target
        print(f"  {target} has the wrong checksum; fetching it again", file=sys.stderr)
        target.unlink()
    if source is not None:
        return _copy_from(f, Path(source), target, dataset)
    return _download(f, target, dataset)


def fetch_all(files: list[RemoteFile], source: Path | None = None, *, dataset: str) -> list[Path]:
    """fetch() each file; one error names every file still missing, so one trip fetches them all."""
    paths, errors = [], []
    for f in files:
        try:
            paths.append(fetch(f, source, dataset=dataset))
        except DatasetError as e:
            errors.append(e)
            if source is None:
                break   # a download failed: do not wait on the others' timeouts
    if not errors:
        return paths
    missing = [f for f in files if not cached_path(f).exists()]
    if len(missing) <= 1:
        raise errors[0]
    group = raw_dir() / missing[0].group
    wanted = "; ".join(f"{f.urls[0]} (md5 {f.md5})" for f in missing)
    raise DatasetError(f"{len(missing)} files of {dataset} are missing. {errors[0].message}", file=errors[0].file,
                       fix=f"download {wanted}, and save them in {group}/; or put them in a folder DIR "
                           f"and run `python data.py --name {dataset} --source DIR`")


def _where_to_put(f: RemoteFile, target: Path, dataset: str) -> str:
    """The fix of every failed fetch: which file, from where, and where it goes."""
    others = "".join(f" or {u}" for u in f.urls[1:])
    return (f"download {f.urls[0]}{others} (md5 {f.md5}) and save it as {target}; "
            f"or put it in a folder DIR (as DIR/{f.name} or DIR/{f.group}/{f.name}) and run "
            f"`python data.py --name {dataset} --source DIR`")


# ---- from a folder of already-downloaded archives ------------------------------------------

def _copy_from(f: RemoteFile, source: Path, target: Path, dataset: str) -> Path:
    # Fashion-MNIST and MNIST share file names, so DIR/<group>/ is looked at first.
    candidates = [p for p in (source / f.group / f.name, source / f.name) if p.is_file()]
    if not candidates:
        raise DatasetError(f"{f.name} is not in {source}", file=source / f.name,
                           fix=_where_to_put(f, target, dataset))
    wrong = []
    for path in candidates:
        got = md5sum(path)
        if got == f.md5:
            _copy_verified(path, target, f.md5)
            return target
        wrong.append(f"{path} (md5 {got})")
    raise DatasetError(f"{f.name} has the wrong checksum, expected md5 {f.md5}: {', '.join(wrong)}; "
                       f"a truncated or different file", file=candidates[0],
                       fix=f"replace it with a fresh copy: {_where_to_put(f, target, dataset)}")


def _copy_verified(path: Path, target: Path, md5: str) -> None:
    """Copy and hash in one pass, so what lands in the cache is exactly what was checked."""
    h = hashlib.md5(usedforsecurity=False)
    with io.atomic_path(target, suffix=".part") as tmp:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for block in iter(lambda: src.read(CHUNK), b""):
                h.update(block)
                dst.write(block)
        if h.hexdigest() != md5:
            raise DatasetError(f"{path} changed while it was copied", file=path, fix="copy it again")


# ---- from the web ----------------------------------------------------------------------------

class _Interrupted(Exception):
    """The connection ended before the whole file came; what came is kept in FILE.part."""


def _download(f: RemoteFile, target: Path, dataset: str) -> Path:
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    for url in urls(f):
        try:
            _transfer_with_retries(url, part)
        except (OSError, http.client.HTTPException, _Interrupted) as e:
            problems.append(f"{url}: {_reason(e)}")
            continue
        got = md5sum(part)
        if got == f.md5:
            os.replace(part, target)
            return target
        # Wrong bytes (another version of the file, or a stale partial): never resume from them.
        part.unlink()
        problems.append(f"{url}: wrong checksum (md5 {got}, expected {f.md5})")
    kept = f"; {part.stat().st_size:,} bytes kept in {part}, rerunning resumes" if part.exists() else ""
    raise DatasetError(f"could not download {f.name}: {'; '.join(problems)}{kept}", file=target,
                       fix=_where_to_put(f, target, dataset))


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"no connection ({e.reason})"
    return str(e) or type(e).__name__


def _transfer_with_retries(url: str, part: Path) -> None:
    for attempt in range(ATTEMPTS):
        try:
            return _transfer(url, part)
        except (_Interrupted, http.client.IncompleteRead, ConnectionError, TimeoutError):
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(RETRY_WAIT)


def _transfer(url: str, part: Path) -> None:
    """Append the rest of `url` to `part` (an HTTP Range request when part holds a beginning)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "memlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return   # nothing left to send: part is already whole (the checksum decides)
        raise
    with response:
        if have and response.status != 206:
            have = 0   # the server ignored the Range header and sends the whole file again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        print(f"  {'resuming' if have else 'downloading'} {url}", file=sys.stderr)
        with open(part, "ab" if have else "wb") as out, _progress(part.name, total, have) as bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
            received = out.tell()
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received:,} of {total:,} bytes")


def _progress(name: str, total: int | None, initial: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"  {name.removesuffix('.part')}", disable=None, leave=False, file=sys.stderr)

