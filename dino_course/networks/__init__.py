"""Given: the backbone networks that the lessons put heads on, and ready-made DINO models.

`vit` is a small Vision Transformer written for reading (patch embedding, attention that can
return its maps, CLS and patch features as plain methods). The heads and the complete DINO model
are yours: `dino_course/heads.py` and `dino_course/model.py`. `dino_models` builds whole models
in one call from a backbone and your head and model (the CPU preset, the paper's ViT-S/16, a
ResNet) and offers head variants (adaptive widths, several heads, spectral normalisation); it
looks your code up when a function runs (the reference switch applies).
"""
