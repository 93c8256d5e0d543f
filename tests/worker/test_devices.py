"""The devices a worker owns and each DDP rank's part of its cores."""

from __future__ import annotations

from smptune.worker.devices import DEVICES_ENV, owned_devices, rank_cpus, rank_share_env
from smptune.worker.host_share import CPUS_ENV, THREAD_ENVS
from smptune.worker.supervisor import WorkerOptions, worker_specs

BROKER = "redis://127.0.0.1:1/0"


def test_a_worker_owns_what_its_supervisor_says_else_the_gpus_it_sees_else_one():
    assert owned_devices({DEVICES_ENV: "2"}, gpus=0) == 2
    assert owned_devices({DEVICES_ENV: "2"}, gpus=4) == 2
    assert owned_devices({}, gpus=3) == 3  # started by hand with CUDA_VISIBLE_DEVICES=0,1,2
    assert owned_devices({}, gpus=0) == 1
    assert owned_devices({DEVICES_ENV: "none"}, gpus=0) == 1


def test_each_rank_takes_its_part_of_the_workers_cores():
    assert rank_cpus([0, 1, 2, 3], 0, 2) == (0, 2)
    assert rank_cpus([0, 1, 2, 3], 1, 2) == (1, 3)
    assert rank_cpus([5], 1, 2) == (5,)  # fewer cores than ranks: they share
    env = rank_share_env(1, 2, {CPUS_ENV: "4-7"})
    assert env[CPUS_ENV] == "5,7"
    assert all(env[name] == "2" for name in THREAD_ENVS)


def test_cpu_workers_with_several_devices_say_so_and_keep_their_names():
    specs = worker_specs(
        WorkerOptions(cpu=2, hostname="h", cpus_per_worker="all", devices_per_worker=2), BROKER
    )
    assert [s.name for s in specs] == ["cpu0@h", "cpu1@h"]
    assert all(s.env[DEVICES_ENV] == "2" for s in specs)
    assert worker_specs(WorkerOptions(cpu=1), BROKER)[0].env[DEVICES_ENV] == "1"


def test_gpu_workers_with_several_devices_each_see_their_group():
    options = WorkerOptions(devices=("0", "1", "2", "3", "4"), hostname="h", devices_per_worker=2)
    specs = worker_specs(options, BROKER)
    # the fifth GPU makes no whole group: it gets no worker
    assert [s.name for s in specs] == ["gpu0+1@h", "gpu2+3@h"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["0,1", "2,3"]
    assert all(s.env[DEVICES_ENV] == "2" for s in specs)
