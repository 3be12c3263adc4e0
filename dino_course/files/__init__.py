"""Given: writing the course's files safely.

`safe_files` writes a file atomically (a complete new file or the old one, never half of one)
and sets a damaged file aside instead of overwriting it; `file_lock` lets two processes share a
file (the progress store, the batch grader's cache) one at a time.
"""
