"""The validate stage's artifact folder: the names other stages, the run report and tests read it by.

::

    statistics/<split>.pb        TFDV DatasetFeatureStatisticsList per split (binary proto)
    schema.pbtxt                 the schema used (curated, the previous run's, or inferred now)
    anomalies.json               [{"severity", "kind", "feature", "description", "split"}]
    anomalies_<split>.pbtxt      TFDV's own Anomalies proto per split
    report.html                  verdict, anomalies, class balance, quarantine summary, statistics
    baseline.json                the data source, and the training statistics the next run compares with
    baseline/train.pb            (after a rejection) the previous accepted training statistics, carried forward
"""

from __future__ import annotations

STAGE = "validate"
STATS_DIR = "statistics"
SCHEMA_FILE = "schema.pbtxt"
ANOMALIES_FILE = "anomalies.json"
REPORT_FILE = "report.html"
BASELINE_FILE = "baseline.json"
BASELINE_STATS = "baseline/train.pb"

#: The stage's artifacts (name -> path in its folder), as its manifest lists them.
ARTIFACTS = {"statistics": STATS_DIR, "schema": SCHEMA_FILE, "anomalies": ANOMALIES_FILE, "report": REPORT_FILE}
