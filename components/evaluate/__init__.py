"""The evaluate stage: candidates vs the from-scratch baseline and the last blessed model, and the blessing."""
