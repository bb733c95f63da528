"""The `memlab` logger: what a run says, on the console and in results/NAME/logs/.

    python run.py --name moons        # the summary, each failure, the table written (INFO)
    python run.py --name moons -v     # also each finished trial (DEBUG)
    python run.py --name moons -q     # only failures and errors (WARNING)

Messages go to stdout (those logged with `extra={"stderr": True}` to stderr), around the
progress bar, so a notebook or a test calling memlab.runner sees what run.py prints.  Each run
also writes everything at INFO (DEBUG with -v) to results/NAME/logs/BACKEND-STAMP.log.  A
console whose reader has gone (`python run.py ... | head`) is silenced, and the run goes on.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("memlab")


def silence(stream) -> None:
    """Send what is still written to `stream` to /dev/null (its reader has gone: `| head`)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def pipe_safe(main, *args) -> int:
    """main(*args), ending quietly (exit 1, no BrokenPipeError) when stdout's reader has gone."""
    try:
        try:
            return main(*args)
        finally:
            sys.stdout.flush()     # here, not at exit: a closed pipe is then still ours to handle
    except BrokenPipeError:
        silence(sys.stdout)
        return 1


class Console(logging.Handler):
    """stdout or stderr, looked up per message (so a redirect or pytest's capsys sees it)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if getattr(record, "stderr", False) else sys.stdout
        try:
            msg = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
                tqdm.tqdm.write(msg, file=stream)       # clears and redraws the progress bar
            else:
                stream.write(msg + "\n")
            stream.flush()
        except BrokenPipeError:
            silence(stream)
        except Exception:
            self.handleError(record)


class RunLogFile(logging.FileHandler):
    """The run's log file; if it cannot be written (a full disk), it stops, saying so once."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.broken:
            return
        try:
            super().emit(record)
            self.flush()
        except OSError as e:
            self.broken = True
            log.warning(f"cannot write the run's log {self.baseFilename}: {e.strerror or e} (the run goes on)",
                        extra={"stderr": True})

    def close(self) -> None:
        try:
            super().close()
        except OSError:       # the unwritten rest of a full disk's log
            pass

    def handleError(self, record) -> None:   # FileHandler.emit swallows errors into this
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            raise exc
        super().handleError(record)


def default_console() -> None:
    """Today's output for every caller (run.py, tests, notebooks): INFO on the console, unless
    someone has configured the `memlab` logger already."""
    if not any(isinstance(h, Console) for h in log.handlers):
        log.addHandler(Console())
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def configure(verbosity: int = 0) -> None:
    """-v (1) / -q (-1): the console's level around INFO; the run's log file keeps INFO or more."""
    default_console()
    level = max(logging.DEBUG, min(logging.ERROR, logging.INFO - 10 * verbosity))
    for h in log.handlers:
        if isinstance(h, Console):
            h.setLevel(level)
    log.setLevel(min(level, logging.INFO))


@contextmanager
def run_log(path: Path):
    """Everything logged meanwhile also goes to `path` (created with its folder)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning(f"cannot write the run's log in {Path(path).parent}: {e.strerror or e} (the run goes on)",
                    extra={"stderr": True})
        yield None
        return
    h = RunLogFile(path)
    log.addHandler(h)
    try:
        yield path
    finally:
        log.removeHandler(h)
        h.close()


default_console()
