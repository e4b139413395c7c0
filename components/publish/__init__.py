"""The publish stage: TensorBoard logs of every run and blessed models, to a publish root with an atomic LATEST."""
