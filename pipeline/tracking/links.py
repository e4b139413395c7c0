"""An MLflow run's page (the links publish.json tells are the publish layout's ``publication_links``).

Kept apart from :mod:`.run_tracking` and :mod:`.mlflow_logging` (which imports mlflow) so that both read it
from one place.
"""

from __future__ import annotations


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page on an http(s) tracking server; "" for any other URI (a database or a local store)."""
    if not uri.lower().startswith(("http://", "https://")):
        return ""
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
