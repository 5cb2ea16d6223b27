"""``python -m callgate`` is the ``callgate`` command."""

from callgate.cli import main

raise SystemExit(main())
