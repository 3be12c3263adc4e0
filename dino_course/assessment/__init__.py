"""Given: the self-assessment of Lesson 3.5 and your progress through the course.

`self_assessment` holds the self-ratings and the skills check (which runs the hidden checks of
the exercises behind each skill), `quiz` and `quiz_bank` the quiz, `progress` the small file your
ratings and answers are saved in, and `dashboard` the table of everything you have done.
"""
