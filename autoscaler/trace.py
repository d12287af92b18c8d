"""Request traces for the simulator: read a CSV (``TIMESTAMP, ContextTokens, GeneratedTokens``,
like the Azure LLM inference traces), or make bursty ones (ramps, flash crowds, idle gaps)."""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class Request:
    """One request of a trace: seconds after the first, and its tokens."""

    at: float
    context_tokens: int
    generated_tokens: int

    def units(self, prompt_weight: float, output_weight: float) -> float:
        """Its cost in model units (weights per 1,000 tokens, as in the catalogue)."""
        return (self.context_tokens * prompt_weight + self.generated_tokens * output_weight) / 1000


def _when(text: str) -> float:
    # The Azure traces write 7 fractional digits; datetime takes at most 6.
    head, dot, fraction = text.strip().partition(".")
    stamp = f"{head}.{fraction[:6]}" if dot else head
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def read_trace(path: Path, compression: float = 1.0) -> list[Request]:
    """The requests of a CSV trace, times relative to the first and divided by ``compression``."""
    if compression <= 0:
        raise ValueError("compression must be positive")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: no column(s) {', '.join(sorted(missing))}")
        rows = [
            (_when(r["TIMESTAMP"]), int(r["ContextTokens"]), int(r["GeneratedTokens"]))
            for r in reader
        ]
    if not rows:
        raise ValueError(f"{path}: no requests")
    rows.sort()
    first = rows[0][0]
    return [Request((t - first) / compression, c, g) for t, c, g in rows]


def write_trace(path: Path, requests: Iterable[Request]) -> None:
    """Write ``requests`` in the CSV form :func:`read_trace` reads."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for r in requests:
            stamp = (start + timedelta(seconds=r.at)).strftime("%Y-%m-%d %H:%M:%S.%f")
            out.writerow([stamp, r.context_tokens, r.generated_tokens])


def poisson(
    rate: Callable[[float], float], duration_s: float, peak: float, seed: int
) -> list[Request]:
    """Poisson arrivals at ``rate(t)`` requests/s (at most ``peak``), by thinning; tokens
    lognormal around a chat turn (context median ~600, output median ~150)."""
    rng = random.Random(seed)
    t, requests = 0.0, list[Request]()
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return requests
        if rng.random() * peak <= rate(t):
            context = min(8000, max(8, int(rng.lognormvariate(math.log(600), 0.9))))
            output = min(2000, max(1, int(rng.lognormvariate(math.log(150), 0.8))))
            requests.append(Request(t, context, output))


def _ramps(t: float) -> float:
    """40 min: up from 1 to 6 req/s over 10 min, hold, down over 10 min, hold, up again."""
    phase = t % 2400
    if phase < 600:
        return 1 + 5 * phase / 600
    if phase < 1200:
        return 6.0
    if phase < 1800:
        return 6 - 5 * (phase - 1200) / 600
    return 1.0


def _flash(t: float) -> float:
    """4 req/s, with two flash crowds of 8x (32 req/s, within 10 s) lasting 2 minutes."""
    for start in (600.0, 1800.0):
        if start <= t < start + 120:
            return 4 + 28 * min(1.0, (t - start) / 10)
    return 4.0


def _gaps(t: float) -> float:
    """Bursts of 5 min at 5 req/s, apart by idle gaps of 3, 6 and 10 minutes."""
    busy = [(0, 300), (480, 780), (1140, 1440), (2040, 2340)]
    return 5.0 if any(a <= t < b for a, b in busy) else 0.0


BURSTY: dict[str, tuple[Callable[[float], float], float, float]] = {
    "ramps": (_ramps, 2400.0, 6.0),
    "flash": (_flash, 2400.0, 32.0),
    "gaps": (_gaps, 2400.0, 5.0),
}


def bursty(name: str, seed: int = 13) -> list[Request]:
    """One of the :data:`BURSTY` traces."""
    rate, duration, peak = BURSTY[name]
    return poisson(rate, duration, peak, seed)
