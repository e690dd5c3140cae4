"""python -m mmlab: the same command line as `mmlab`."""
import sys

from mmlab.course.cli import main

sys.exit(main())
