"""One lock around every numba ``parallel=True`` kernel call.

numba's fallback threading layer ("workqueue", used where neither OpenMP nor TBB loads) aborts the
process when two threads launch parallel kernels at once; the GUI runs analysis on worker threads, so
calls are serialised here. Each kernel already uses every core, so nothing is lost.
"""

import threading

KERNEL_LOCK = threading.RLock()
