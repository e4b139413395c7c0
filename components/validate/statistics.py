"""TFDV statistics of the ingest examples, one set per split, computed in one Beam pipeline.

Besides TFDV's default statistics (per-feature counts, numeric histograms of image height and width, top values
and rank histograms of class names and formats, byte sizes of the encoded images), an ``ImageStatsGenerator``
adds the image domain: a histogram of the formats detected from the bytes (``UNKNOWN`` for anything TensorFlow
cannot decode) and the largest width and height. Its thresholds are lowered so that it reports on small data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubpipe.components.common import features as f
from hubpipe.components.validate.layout import STATS_DIR
from hubpipe.pipeline.core.runtime import import_tfdv

#: Class histograms keep this many classes (TFDV's default is 20 top values).
MAX_CLASSES = 10_000
#: The image-domain generator reports when at least this share of a feature's values are images.
IMAGE_RATIO_THRESHOLD = 0.5


class ImageSizes:
    """The image decoder given to TFDV's ImageStatsGenerator: TFDV's own TensorFlow decoder, except that a
    batch without any image (a non-image text feature) gives no sizes instead of failing in ``tf.map_fn``.
    Duck-typed (``get_formats``, ``get_sizes``) so that this module imports nothing heavy."""

    def __init__(self) -> None:
        self._decoder: Any = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._decoder = None

    def _tfdv_decoder(self) -> Any:
        if self._decoder is None:
            from tensorflow_data_validation.statistics.generators.image_stats_generator import TfImageDecoder

            self._decoder = TfImageDecoder()
        return self._decoder

    def get_formats(self, values: Any) -> Any:
        return self._tfdv_decoder().get_formats(values)

    def get_sizes(self, values: Any) -> Any:
        import numpy as np

        if len(values) == 0:
            return np.zeros((0, 2), dtype=np.int32)
        return self._tfdv_decoder().get_sizes(values)


def stats_options(schema: Any) -> Any:
    """StatsOptions with the image-domain generator; ``schema`` marks the encoded image as bytes."""
    tfdv = import_tfdv()
    from tensorflow_data_validation.statistics.generators.image_stats_generator import ImageStatsGenerator

    images = ImageStatsGenerator(
        image_decoder=ImageSizes(),
        is_image_ratio_threshold=IMAGE_RATIO_THRESHOLD,
        values_threshold=1,
        enable_size_stats=True,
    )
    return tfdv.StatsOptions(
        generators=[images],
        schema=schema,
        num_top_values=MAX_CLASSES,
        num_rank_histogram_buckets=MAX_CLASSES,
    )


def stats_path(folder: Path, split: str) -> Path:
    return folder / STATS_DIR / f"{split}.pb"


def compute_statistics(
    ingest_dir: Path, output_dir: Path, splits: Sequence[str], schema: Any, beam_args: Sequence[str]
) -> dict[str, Path]:
    """Writes ``statistics/<split>.pb`` (a binary DatasetFeatureStatisticsList) for each split that has files."""
    import apache_beam as beam

    tfdv = import_tfdv()
    from tfx_bsl.public import tfxio

    from hubpipe.pipeline.core.runtime import beam_pipeline_options

    (output_dir / STATS_DIR).mkdir(parents=True, exist_ok=True)
    options = stats_options(schema)
    written: dict[str, Path] = {}
    with beam.Pipeline(options=beam_pipeline_options(beam_args)) as pipeline:
        for split in splits:
            files = f.example_files(ingest_dir, split)
            if not files or all(path.stat().st_size == 0 for path in files):
                continue
            pattern = str(ingest_dir / f.EXAMPLES_DIR / f"{split}-*{f.TFRECORD_SUFFIX}")
            written[split] = stats_path(output_dir, split)
            _ = (
                pipeline
                | f"Read_{split}" >> tfxio.TFExampleRecord(file_pattern=pattern).BeamSource()
                | f"Statistics_{split}" >> tfdv.GenerateStatistics(options)
                | f"Write_{split}" >> tfdv.WriteStatisticsToBinaryFile(str(written[split]))
            )
    return written


def load_statistics(path: Path) -> Any:
    tfdv = import_tfdv()

    return tfdv.load_stats_binary(str(path))
