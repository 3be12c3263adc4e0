"""Reference solutions: the complete version of every exercise module in `dino_course/`.

The exercise stubs in `dino_course/` are generated from these files (`dino-course stubs`).
Learners may read them when stuck; `DINO_COURSE_REFERENCE` makes them stand in for a
learner's code (see `dino_course.grading.reference_switch`).
"""
