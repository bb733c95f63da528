"""Memory sizes and durations as users write them: 4G, 500M; 02:00:00, 2h, 90m."""
from __future__ import annotations

import re

from memlab.errors import ConfigError


def parse_mem(text, file=None) -> int:
    """'4G', '500M', '1.5G', '2T' -> megabytes (a bare number is megabytes, as in SLURM)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?\s*", str(text))
    if not m:
        raise ConfigError(f"cannot read memory '{text}'", file=file, key="resources.mem / --mem",
                          fix="write it with a unit: 500M, 4G, 1T")
    scale = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 ** 2}[m[2].lower()]
    return max(1, round(float(m[1]) * scale))


def format_mem(mb: int) -> str:
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def parse_time(text, file=None, key: str = "resources.time / --time") -> int:
    """'02:00:00', '1-12:00:00', '90:00' (min:sec), '2h', '30m', '1h30m', '1d', '45s' -> seconds."""
    s = str(text).strip()
    if re.fullmatch(r"(\d+(?:\.\d+)?[smhd])+", s):      # 2h, 30m, 1h30m, 1.5d
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        return round(sum(float(n) * unit[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", s)))
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d)(?::(\d\d))?", s)
    if m:
        days, a, b, c = int(m[1] or 0), int(m[2]), int(m[3]), m[4]
        hours, minutes, seconds = (a, b, int(c)) if c is not None else (0, a, b)
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    raise ConfigError(f"cannot read time limit '{text}'", file=file, key=key,
                      fix="write HH:MM:SS (02:00:00), D-HH:MM:SS (1-12:00:00), or 90m, 2h, 1d")


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def human(seconds: float) -> str:
    """A duration for people: '2h', '1h 30m', '45 s', '0.5 s'."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    s = round(seconds)
    parts = [(s // 86400, "d"), (s // 3600 % 24, "h"), (s // 60 % 60, "m"), (s % 60, "s")]
    return " ".join(f"{n}{u}" for n, u in parts if n) or "0s"
