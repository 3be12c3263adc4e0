"""Given: images in, multi-crop batches out.

The datasets the course trains on (`datasets`: scikit-learn's digits, image folders, torchvision
sets downloaded only on request), photos that ship inside installed packages for the lessons
(`sample_images`), the pixel normalisation (`normalization`), and the course's one multi-crop
data path (`multicrop_pipeline`, with the batched photometric operations in `photometric`),
used by Lesson 3.2, the train job and the Lesson 4.4 demo. Its crop boxes and batch assembly
come from your Lesson 3.2 exercises.
"""
