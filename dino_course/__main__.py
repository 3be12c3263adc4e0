import sys

from dino_course.cli import main

sys.exit(main())
