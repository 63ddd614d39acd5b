"""``python -m gossip.cli`` is the ``gossip`` console script, as ``python -m gossip`` is."""

from gossip.cli import main

raise SystemExit(main())
