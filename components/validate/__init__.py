"""The validate stage: TFDV statistics, schema and anomalies of the ingest examples, with an HTML report.

See :mod:`hubpipe.components.validate.core`.
"""
