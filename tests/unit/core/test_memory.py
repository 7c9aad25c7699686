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
