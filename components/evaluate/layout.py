"""The evaluate stage's artifact folder: the names publish, the run report and tests read it by.

::

    blessing.json               every check of every candidate (name, value, its 95% interval, the McNemar
                                p-value of paired checks, threshold, rule, decided_by, passed), the blessed
                                model or none, the reasons, the baseline and the last blessed model compared
                                (accuracies with their 95% intervals), how the statistics are computed
    BLESSED | NOT_BLESSED       an empty marker file
    metrics/<model>.json        accuracy and its 95% Wilson interval, top-5 accuracy, per-class
                                precision/recall/F1, macro-F1, log loss, confusion matrix
    images/<model>/*.png        confusion matrix, misclassified test images
    tensorboard/                the same for TensorBoard (see :mod:`.tensorboard_logs`)
"""

from __future__ import annotations

STAGE = "evaluate"
BLESSING_FILE = "blessing.json"
BLESSED_MARKER = "BLESSED"
NOT_BLESSED_MARKER = "NOT_BLESSED"
METRICS_DIR = "metrics"
IMAGES_DIR = "images"
TENSORBOARD_DIR = "tensorboard"


def artifacts(blessed: bool) -> dict[str, str]:
    """The stage's artifacts (name -> path in its folder), as its manifest lists them."""
    return {
        "blessing": BLESSING_FILE,
        "marker": BLESSED_MARKER if blessed else NOT_BLESSED_MARKER,
        "metrics": METRICS_DIR,
        "images": IMAGES_DIR,
        "tensorboard": TENSORBOARD_DIR,
    }
