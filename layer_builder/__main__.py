from __future__ import annotations

import sys

from layer_builder.cli import main

sys.exit(main())
