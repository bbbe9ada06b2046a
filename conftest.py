"""Test settings shared by every test, and by the kernels that nbval starts (they inherit os.environ).

At the repository root so that it applies to the notebooks under _build/ci/ as well as to tests/.
"""

import os

# Fixed thread counts, no progress bars, no network: the same settings lib.build gives its kernels,
# so that a notebook re-executed by nbval prints what it printed when papermill executed it.
for _k, _v in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "BOOK_OFFLINE": "1",
    "BOOK_STATIC": "1",
    "PYTHONHASHSEED": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}.items():
    os.environ[_k] = _v
