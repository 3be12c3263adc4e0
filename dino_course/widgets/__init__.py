"""Given: pictures and interactive widgets for the lesson notebooks.

Each runs on your own exercises (or the reference where you switched it on): crops drawn on a
photo (`crop_plots`, `crop_explorer`), centering and temperature explorers (`loss_explorer`),
the representation-quality report and plot (`feature_quality`) and the student-teacher parameter
divergence over training (`parameter_divergence_history`). Their logic is importable and tested
without a browser.
"""
