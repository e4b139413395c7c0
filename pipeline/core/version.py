"""hubpipe's version: setup.py reads it from this file, manifests and run.json record it."""

__version__ = "0.1.0"
