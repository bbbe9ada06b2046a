"""Test settings shared by every test, and by the kernels that nbval starts (they inherit os.environ).

At the repository root so that it applies to the notebooks under _build/ci/ as well as to tests/.
"""

import os

from lib.build import worker_env

# Fixed thread counts, no progress bars, no network: the settings lib.build gives its kernels
# (one thread each), so that a notebook re-executed by nbval prints what papermill printed.
os.environ.update(worker_env(threads=1))
