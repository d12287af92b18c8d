"""The CPU count follows the cgroup quota and the affinity mask (fake cgroup file trees)."""

from __future__ import annotations

from pathlib import Path

import pytest

from preprocess.cpu import cgroup_quota, usable_cpus
from preprocess.pool import pool_size

EIGHT = set(range(8))


def tree(root: Path, proc_line: str, files: dict[str, str]) -> Path:
    """Write a fake cgroup mount at ``root`` and a /proc/self/cgroup naming this process's group."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    proc = root.parent / "proc-self-cgroup"
    proc.write_text(proc_line + "\n")
    return proc


def cpus(root: Path, proc: Path, affinity: set[int] = EIGHT) -> int:
    return usable_cpus(cgroup_root=root, proc_cgroup=proc, affinity=affinity)


def test_cgroup_v2_quota_caps_the_pool(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = tree(
        root,
        "0::/kubepods/pod1/ctr",
        {"cpu.max": "max 100000", "kubepods/pod1/ctr/cpu.max": "150000 100000"},
    )
    assert cgroup_quota(cgroup_root=root, proc_cgroup=proc) == 1.5
    assert cpus(root, proc) == 2  # 1.5 CPUs of quota: two processes keep it busy
    assert pool_size(cpus(root, proc), None) == 2


def test_a_parent_cgroup_quota_applies_to_its_children(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = tree(
        root,
        "0::/kubepods/pod1/ctr",
        {"kubepods/pod1/cpu.max": "300000 100000", "kubepods/pod1/ctr/cpu.max": "max 100000"},
    )
    assert cpus(root, proc) == 3


def test_affinity_is_tighter_than_the_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = tree(root, "0::/", {"cpu.max": "400000 100000"})
    assert cpus(root, proc, affinity={0, 1}) == 2
    assert cpus(root, proc) == 4


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = tree(
        root,
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc",
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
        },
    )
    assert cpus(root, proc) == 3


@pytest.mark.parametrize(
    ("proc_line", "files"),
    [
        ("0::/", {"cpu.max": "max 100000"}),  # v2, no limit
        (
            "4:cpu,cpuacct:/",
            {"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
        ),
        ("0::/gone", {}),  # no cgroup files at all
    ],
)
def test_no_quota_means_the_affinity_mask(
    tmp_path: Path, proc_line: str, files: dict[str, str]
) -> None:
    root = tmp_path / "cgroup"
    proc = tree(root, proc_line, files)
    assert cgroup_quota(cgroup_root=root, proc_cgroup=proc) is None
    assert cpus(root, proc) == 8


def test_a_tiny_quota_still_gives_one_process(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = tree(root, "0::/", {"cpu.max": "10000 100000"})
    assert cpus(root, proc) == 1


def test_this_machine() -> None:
    assert 1 <= usable_cpus() <= len(__import__("os").sched_getaffinity(0))
