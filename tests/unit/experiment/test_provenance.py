"""experiment.provenance: the load at a run's start and the CPU other processes take during it."""

import subprocess
import sys
import time

from fedlab.experiment.provenance import OTHERS_CPU_LIMIT, Contention, measured_on_shared_cpu, others_cpu_percent


def test_contention_counts_the_cpu_of_other_processes_not_of_the_run_itself():
    assert others_cpu_percent(system_busy_s=30.0, own_busy_s=10.0, wall_s=20.0, cpus=2) == 50.0
    assert others_cpu_percent(system_busy_s=5.0, own_busy_s=9.0, wall_s=20.0, cpus=2) == 0.0
    # CPU burnt by this process and by a child it waits for is its own, not another process's (the child
    # idles before it exits so that a sample sees all its CPU time)
    with Contention(interval=0.2) as c:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; t = time.process_time()\nwhile time.process_time() - t < 1.0: pass\ntime.sleep(0.6)",
            ]
        )
        t0 = time.process_time()
        while time.process_time() - t0 < 1.0:
            pass
        child.wait()
    r = c.result
    assert r["own_cpu_s"] >= 1.8 and r["system_busy_cpu_s"] >= r["own_cpu_s"] - 0.5
    assert set(r) == {"others_cpu_percent", "own_cpu_s", "system_busy_cpu_s", "wall_s", "cpus", "shared"}
    assert measured_on_shared_cpu({"contention": r}) is r["shared"]
    assert measured_on_shared_cpu({"contention": {"shared": False}, "load_at_start": {"shared": True}}) is False
    # a stored flag is re-judged by today's limit from the stored percentage (the limit was 25 % once)
    assert measured_on_shared_cpu({"contention": {"shared": False, "others_cpu_percent": OTHERS_CPU_LIMIT + 7}}) is True
    assert (
        measured_on_shared_cpu({"contention": {"shared": False, "others_cpu_percent": OTHERS_CPU_LIMIT - 3}}) is False
    )
    assert measured_on_shared_cpu({}) is None


def test_machine_load_is_recorded_with_a_shared_flag():
    from fedlab.experiment.provenance import SHARED_CPU_PERCENT, machine_load

    load = machine_load(interval=0.1)
    assert 0 <= load["cpu_busy_percent"] <= 100 and load["cpus"] >= 1
    assert load["shared"] == (load["cpu_busy_percent"] > SHARED_CPU_PERCENT)
