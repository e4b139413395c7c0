"""Experiment tracking of finished runs: what is logged (run_tracking.py), MLflow logging and model flavour
(mlflow_logging.py, mlflow_model.py), and the Kubeflow publish task's view of its pipeline run (kubeflow_run.py)."""
