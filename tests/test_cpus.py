"""The CPUs a process may use: affinity mask and cgroup quotas (v2 and v1) lower the machine's count."""

from __future__ import annotations

import math
import os

import pytest

from amodaldata.cpus import available_cpus, cgroup_cpu_quota


def _machine() -> int:
    count = os.cpu_count() or 1
    return min(count, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else count


@pytest.mark.parametrize(("text", "quota"), [("max 100000", None), ("150000 100000", 1.5), ("50000 100000", 0.5),
                                             ("garbage", None), ("0 100000", None)])
def test_cgroup_v2_quota(tmp_path, text, quota):
    (tmp_path / "cpu.max").write_text(text + "\n")
    assert cgroup_cpu_quota(tmp_path) == quota
    expected = _machine() if quota is None else min(_machine(), max(1, math.ceil(quota)))
    assert available_cpus(tmp_path) == expected


@pytest.mark.parametrize(("quota_us", "period_us", "quota"), [("-1", "100000", None), ("100000", "100000", 1.0),
                                                              ("250000", "100000", 2.5)])
def test_cgroup_v1_quota(tmp_path, quota_us, period_us, quota):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota_us + "\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(period_us + "\n")
    assert cgroup_cpu_quota(tmp_path) == quota


def test_no_cgroup_files_means_the_affinity_mask(tmp_path):
    assert cgroup_cpu_quota(tmp_path) is None
    assert available_cpus(tmp_path) == _machine() >= 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_a_process_pinned_to_one_cpu_counts_one(tmp_path):
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert available_cpus(tmp_path) == 1
    finally:
        os.sched_setaffinity(0, before)
