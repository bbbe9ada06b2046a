"""``python -m lib.build``: see :mod:`lib.build.cli`."""

from .cli import main

raise SystemExit(main())
