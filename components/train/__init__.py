"""The train stage: cached feature extraction, classifier heads, the from-scratch baseline, fine-tuning, export.

Importing this package does not import TensorFlow. Entry points: :func:`.core.train_models` (the core),
:func:`.executor.run` (the stage), :mod:`.layout` (the names of its artifacts) and :mod:`.serving` (loading a
trained model and classifying image files, for ``hubpipe predict``).
"""
