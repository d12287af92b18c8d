"""The CPU this process may really use: cgroup quota (v2 ``cpu.max``, v1 CFS) and affinity."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(
    *,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    affinity: set[int] | None = None,
) -> int:
    """Whole CPUs to plan for: the least of the CPUs this process may run on and the
    cgroup CPU quota (rounded up) of its cgroup and every cgroup above it; at least 1."""
    cpus = len(affinity if affinity is not None else os.sched_getaffinity(0))
    quota = cgroup_quota(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_quota(
    *, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> float | None:
    """The tightest CPU quota (in CPUs) over this process's cgroup and its ancestors; None: none."""
    quotas = [q for d in _cgroup_dirs(cgroup_root, proc_cgroup) if (q := _quota_in(d)) is not None]
    return min(quotas, default=None)


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup directories (v2 unified, or v1's cpu controller), leaf to root."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    found: list[Path] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: "0::/path"
            base = root
        elif "cpu" in controllers.split(","):  # cgroup v1: "4:cpu,cpuacct:/path"
            base = next(
                (root / n for n in (controllers, "cpu", "cpu,cpuacct") if (root / n).is_dir()), root
            )
        else:
            continue
        directory = base / path.lstrip("/")
        while True:
            found.append(directory)
            if directory == base:
                break
            directory = directory.parent
    return found or [root]


def _quota_in(directory: Path) -> float | None:
    """The CPU quota a cgroup directory sets, in CPUs, or None (unlimited or no such files)."""
    v2 = _read(directory / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota == "max" or not period:
            return None
        return int(quota) / int(period)
    v1_quota, v1_period = (
        _read(directory / "cpu.cfs_quota_us"),
        _read(directory / "cpu.cfs_period_us"),
    )
    if v1_quota is None or v1_period is None or int(v1_quota) <= 0:
        return None
    return int(v1_quota) / int(v1_period)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
