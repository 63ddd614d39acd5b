"""``python -m gossip`` is the ``gossip`` console script (the launcher starts nodes this way)."""

from gossip.cli import main

raise SystemExit(main())
