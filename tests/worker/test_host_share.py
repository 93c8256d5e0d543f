"""How workers share a machine: cpulists, the division of cores, NUMA-local cores of a GPU,
the worker's environment and DataLoader workers (no processes; ``workers start`` itself is
driven in tests/test_workers.py)."""

from __future__ import annotations

import pytest

from smptune.worker.host_share import (
    CPUS_ENV,
    MEMORY_FRACTION_ENV,
    CpuShare,
    dataloader_workers,
    describe_share,
    format_cpulist,
    parse_cpulist,
    pci_local_cpus,
    share_cpus,
    share_env,
)


def test_cpulists_read_and_write_the_kernel_format():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpulist("5") == [5] and parse_cpulist("") == []
    assert format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    assert format_cpulist([4]) == "4" and format_cpulist([]) == ""
    with pytest.raises(ValueError):
        parse_cpulist("a-b")


def test_cores_are_divided_equally_and_disjointly():
    shares = share_cpus(range(8), 3)
    assert [s.cpus for s in shares] == [(0, 1), (2, 3), (4, 5)]
    assert [s.threads for s in share_cpus(range(8), 2)] == [4, 4]
    # an explicit count per worker
    assert [s.cpus for s in share_cpus(range(8), 2, per_worker=3)] == [(0, 1, 2), (3, 4, 5)]
    # a narrowed affinity (taskset, a container) is all there is to divide
    assert [s.cpus for s in share_cpus([2, 3, 6, 7], 2)] == [(2, 3), (6, 7)]


def test_more_workers_than_cores_share_them_round_robin_one_each():
    shares = share_cpus([0, 1], 4)
    assert [s.cpus for s in shares] == [(0,), (1,), (0,), (1,)]
    assert all(s.threads == 1 for s in shares)


def test_an_explicit_count_that_does_not_fit_wraps_around():
    shares = share_cpus(range(4), 3, per_worker=2)
    assert [s.cpus for s in shares] == [(0, 1), (2, 3), (0, 1)]


def test_gpu_workers_take_the_cores_of_their_numa_node_first():
    # Given two GPUs, one on each node of a machine with cores 0-3 and 4-7
    local = [[4, 5, 6, 7], [4, 5, 6, 7], [0, 1, 2, 3], [0, 1, 2, 3]]
    # When two slots per GPU share the machine
    shares = share_cpus(range(8), 4, local=local)
    # Then each slot's cores sit on its GPU's node
    assert [s.cpus for s in shares] == [(4, 5), (6, 7), (0, 1), (2, 3)]


def test_the_local_cores_of_a_pci_device_come_from_sysfs(tmp_path):
    device = tmp_path / "bus/pci/devices/0000:17:00.0"
    device.mkdir(parents=True)
    (device / "local_cpulist").write_text("0-15,32-47\n")
    cpus = pci_local_cpus("00000000:17:00.0", sysfs=tmp_path)  # as nvidia-smi writes it
    assert cpus == [*range(16), *range(32, 48)]
    assert pci_local_cpus("0000:17:00.0", sysfs=tmp_path) == cpus
    assert pci_local_cpus("00000000:65:00.0", sysfs=tmp_path) is None


def test_a_share_in_the_environment_and_as_people_read_it():
    env = share_env(CpuShare((2, 3)), 0.25)
    assert env == {
        CPUS_ENV: "2-3",
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        MEMORY_FRACTION_ENV: "0.25",
    }
    assert describe_share(env) == "cpus 2-3 (2 threads), 25% of the device's memory"
    assert describe_share({CPUS_ENV: "5"}) == "cpus 5 (1 thread)"
    assert share_env(None, None) == {} and describe_share({}) == ""


def test_dataloader_workers_follow_the_share(monkeypatch):
    monkeypatch.setenv(CPUS_ENV, "0-3")
    assert dataloader_workers("auto", on_gpu=True) == 3  # one core trains
    assert dataloader_workers("auto", on_gpu=False) == 0  # the cores train
    assert dataloader_workers(2, on_gpu=False) == 2
    monkeypatch.setenv(CPUS_ENV, "0-31")
    assert dataloader_workers("auto", on_gpu=True) == 8
    monkeypatch.setenv(CPUS_ENV, "0")
    assert dataloader_workers("auto", on_gpu=True) == 0
