"""`python -m study`: the SUMix study's command line (`study.command`).

KERAS_BACKEND=tensorflow python -m study              # the full grid
KERAS_BACKEND=tensorflow python -m study --parts A    # one part
KERAS_BACKEND=tensorflow python -m study --quick      # under a minute
python -m study --summary-only                        # the report only
"""

import sys

from study.command import main

sys.exit(main())
