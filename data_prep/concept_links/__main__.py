"""``python -m data_prep.concept_links``."""

import sys

from data_prep.concept_links.cli import main

sys.exit(main())
