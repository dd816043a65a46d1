"""``python -m fastjobs``: the same as the ``fastjobs`` command."""

from .cli import main

raise SystemExit(main())
