"""Given: pictures and interactive widgets for the lesson notebooks.

Each runs on your own exercises (or the reference where you switched it on): crops drawn on a
photo (`crop_plots`, `crop_explorer`), centering and temperature explorers (`loss_explorer`),
representation-quality plots (`feature_plots`) and the student-teacher divergence over training
(`divergence_tracker`). Their logic is importable and tested without a browser.
"""
