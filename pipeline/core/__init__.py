"""The foundation every layer uses: errors, artifacts, locking, run-time set-up, configuration, the stage
contract, the execution core, crash points, progress and the run folder's names.

It imports nothing of hubpipe outside itself (a contract in ``.importlinter``, checked by ``make lint``).
"""
