"""Given: images in, multi-crop batches out.

The datasets the course trains on (`datasets`: scikit-learn's digits, image folders, torchvision
sets downloaded only on request), photos that ship inside installed packages for the lessons
(`sample_images`), and the batched multi-crop data path of the train job (`batched_multicrop`,
with the photometric operations in `photometric`). The crop boxes and the batch assembly come
from your Lesson 3.2 exercises.
"""
