# The grading engine: per-exercise verdicts, --reference, --maintainer, --lesson (see dino_course/grading/pytest_plugin.py).
pytest_plugins = ["dino_course.grading.pytest_plugin"]
