"""core.memory: peak memory sampled while a block runs."""


def test_peak_memory_is_measured_while_the_block_runs():
    import numpy as np

    from fedlab.core.memory import PeakRSS

    with PeakRSS(interval=0.01) as before:
        pass
    with PeakRSS(interval=0.01) as mem:
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        block.sum()
        del block
    assert mem.peak_mb >= before.peak_mb + 250


def test_the_peak_of_a_process_tree_counts_its_children():
    """``descendants=True`` (the federated benchmark: the driver and Ray's workers) adds the children's memory."""
    import subprocess
    import sys
    import time

    from fedlab.core.memory import PeakRSS

    child = (
        "import numpy as np, time; b = np.ones(300 * 2**20 // 8); b.sum(); print('ready', flush=True); time.sleep(1.5)"
    )
    peaks = {}
    for descendants in (False, True):
        with PeakRSS(interval=0.05, descendants=descendants) as mem:
            proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.5)
            proc.wait(10)
        peaks[descendants] = mem.peak_mb
    assert peaks[True] >= peaks[False] + 250
