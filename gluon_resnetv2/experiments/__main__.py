"""``python -m gluon_resnetv2.experiments --job JSON`` (:mod:`.job`): called by running experiments and Slurm job
scripts."""

import sys

from .job import main

if __name__ == "__main__":
    sys.exit(main())
