"""Pieces shared by the stages: the example format and artifact helpers."""
