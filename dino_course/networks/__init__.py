"""Given: the backbone networks that the lessons put heads on.

`vit` is a small Vision Transformer written for reading (patch embedding, attention that can
return its maps, CLS and patch features as plain methods). The heads and the complete DINO model
are yours: `dino_course/heads.py` and `dino_course/model.py`.
"""
