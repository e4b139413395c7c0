"""The ingest stage: images from a folder, archive, URL or gs:// path become sharded TFRecords of examples.

Every file found is either written as an example, held out by ``data.percent``, or quarantined with a reason
(``quarantine.json``); see :mod:`hubpipe.components.ingest.core`.
"""
