"""The ingest stage's artifact folder: the names other stages, the run report and tests read it by.

::

    examples/<split>-NNNNN-of-MMMMM.tfrecord   tf.train.Example shards (see hubpipe.components.common.features)
    labels.txt                                 class names; line number = integer label
    quarantine.json                            every file not ingested: [{"path", "reason", "detail"}]
    duplicates.json                            groups of identical content and what the policy did
    summary.json                               counts per split, class and reason; the source; the layout
"""

from __future__ import annotations

from hubpipe.components.common.features import EXAMPLES_DIR, LABELS_FILE

STAGE = "ingest"
QUARANTINE_FILE = "quarantine.json"
DUPLICATES_FILE = "duplicates.json"
SUMMARY_FILE = "summary.json"

#: The stage's artifacts (name -> path in its folder), as its manifest lists them.
ARTIFACTS = {
    "examples": EXAMPLES_DIR,
    "labels": LABELS_FILE,
    "quarantine": QUARANTINE_FILE,
    "duplicates": DUPLICATES_FILE,
    "summary": SUMMARY_FILE,
}
