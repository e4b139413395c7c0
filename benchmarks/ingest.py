"""Throughput and memory of the Beam ingestion on the sample dataset at x1 and x4 size.

Each size runs in its own process (``--child``), which imports TensorFlow and Beam first, then times the ingest
core alone and reports its own peak RSS (``ru_maxrss``): the pipeline runs in that process (DirectRunner's
in-process engine), so that is the ingestion's memory. Memory must stay flat as data grows: image bytes never
pass through a GroupByKey. The datasets are generated once into the hubpipe cache.

    python benchmarks/ingest.py      # ends with: RESULT images_s_x1=... images_s_x4=... peak_rss_mb_x1=... ...
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCALES = {"x1": (75, 25), "x4": (300, 100)}  # training and test images per class (10 classes)


def child(dataset: str, output: str) -> None:
    """Ingests ``dataset`` into ``output`` and prints one JSON line of measurements."""
    from hubpipe.components.ingest.core import IngestRequest, ingest
    from hubpipe.components.ingest.sources import ResolvedSource
    from hubpipe.pipeline.core.config import DataConfig
    from hubpipe.pipeline.core.runtime import import_tensorflow

    import_tensorflow()
    import apache_beam  # noqa: F401  (imported before timing)

    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    source = ResolvedSource("directory", dataset, dataset)
    started = time.perf_counter()
    outcome = ingest(IngestRequest(source, Path(output), DataConfig(source=dataset)))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    images = outcome.results()["files_seen"]
    print(json.dumps({"images": images, "seconds": seconds, "peak_rss_mb": peak_mb, "baseline_rss_mb": baseline_mb}))


def measure(dataset: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="hubpipe-bench-") as tmp:
        command = [sys.executable, __file__, "--child", str(dataset), tmp]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from hubpipe.data.sample import SampleSpec, ensure_sample_dataset
    from hubpipe.pipeline.core.cache_root import cache_root

    logging.basicConfig(level=logging.WARNING)
    figures = {}
    for name, (train, test) in SCALES.items():
        dataset = ensure_sample_dataset(cache_root(), SampleSpec(train_per_class=train, test_per_class=test))
        figures[name] = measure(dataset)
        row = figures[name]
        rate = row["images"] / row["seconds"]
        print(
            f"{name}: {row['images']} images in {row['seconds']:.1f} s = {rate:.0f} images/s; "
            f"peak RSS {row['peak_rss_mb']:.0f} MB (after imports {row['baseline_rss_mb']:.0f} MB)"
        )
    x1, x4 = figures["x1"], figures["x4"]
    print(
        f"RESULT images_s_x1={x1['images'] / x1['seconds']:.1f} images_s_x4={x4['images'] / x4['seconds']:.1f} "
        f"peak_rss_mb_x1={x1['peak_rss_mb']:.0f} peak_rss_mb_x4={x4['peak_rss_mb']:.0f} "
        f"rss_ratio={x4['peak_rss_mb'] / x1['peak_rss_mb']:.2f}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
