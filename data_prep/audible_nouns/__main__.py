"""``python -m data_prep.audible_nouns``: build the audible-noun table."""

import sys

from data_prep.audible_nouns.cli import main

sys.exit(main())
