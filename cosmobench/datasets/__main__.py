"""``python -m cosmobench.datasets list|info|fetch|verify|path`` (same as ``cosmobench data ...``)."""
import sys

from cosmobench.datasets.cli import main

sys.exit(main())
