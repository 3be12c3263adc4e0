"""Given: the course's main job, DINO training (`dino-course train`), built from your exercises.

`train` holds the configuration, its presets and the training loop; `checkpoints` saves and
resumes a run; `distributed` runs it under `torchrun`; `figures` draws a run's curves and
attention maps; `demo` is the short run of the Lesson 4.4 notebook. Every exercise the job needs
is taken from your files (or from the reference for the lessons you switched on).
"""
