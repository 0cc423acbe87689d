"""``python -m data_prep.avsynth``."""

import sys

from data_prep.avsynth import main

sys.exit(main())
