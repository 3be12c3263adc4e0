"""The instructor edition: run the course as a graded class, one module per job.

`release` writes the student edition (lessons, stubs, given code and the public checks of
`public_checks`, graded by `student_plugin`; no `solutions/`, no hidden checks), `submit` writes
and reads the hand-in archive a student makes with `dino-course submit`, `points` holds the points
per exercise (`points.toml`), `runner` grades one submission (a static scan, then `worker`
processes that grade each exercise in its isolated world with time, CPU, memory and output
limits, falling back exercise by exercise when one crashes, loops or damages its copy of the
course), `autograder` builds the Gradescope bundle and is its `run_autograder`, and `batch` grades
a folder of submissions into a gradebook and feedback files. The isolation is by processes, not a
security sandbox; see `runner`.
"""
