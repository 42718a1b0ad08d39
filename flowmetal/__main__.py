"""`python -m flowmetal`: the same command line as the `flowmetal` script."""

from flowmetal.cli import main

raise SystemExit(main())
