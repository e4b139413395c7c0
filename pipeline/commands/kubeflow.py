"""``hubpipe compile`` and ``hubpipe submit``: the pipeline on Kubeflow Pipelines."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hubpipe.pipeline.commands.options import config_options
from hubpipe.pipeline.core.config import PipelineConfig
from hubpipe.pipeline.kubeflow.options import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_IMAGE,
    GPU_RESOURCE,
    KubeflowOptions,
    validate_options,
)


def kubeflow_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the cluster flags; the command receives ``options: KubeflowOptions`` instead of them."""

    @click.option(
        "--image",
        help=f"Container image of every task [default: {DEFAULT_IMAGE}, or {DEFAULT_CPU_IMAGE} with --accelerators 0].",
    )
    @click.option(
        "--accelerators",
        type=click.IntRange(0, 16),
        default=1,
        show_default=True,
        help="Accelerators for the train task; 0 runs every task on CPU.",
    )
    @click.option("--accelerator-type", default=GPU_RESOURCE, show_default=True, help="Accelerator resource name.")
    @click.option("--pvc", "pvc_name", default="", help="PVC mounted in every task (data, caches, publish root).")
    @click.option("--pvc-mount", default="/mnt/hubpipe", show_default=True, help="Where the PVC is mounted.")
    @click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True, help="Retries of I/O tasks.")
    @click.option("--no-caching", is_flag=True, help="Disable KFP's caching of task results.")
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        image: str | None,
        accelerators: int,
        accelerator_type: str,
        pvc_name: str,
        pvc_mount: str,
        retries: int,
        no_caching: bool,
        **kwargs: Any,
    ) -> Any:
        options = KubeflowOptions(
            image=image or (DEFAULT_IMAGE if accelerators else DEFAULT_CPU_IMAGE),
            accelerator_type=accelerator_type,
            accelerator_count=accelerators,
            caching=not no_caching,
            retries=retries,
            pvc_name=pvc_name,
            pvc_mount_path=pvc_mount,
        )
        return command(*args, options=validate_options(options), **kwargs)

    return wrapper


@click.command("compile")
@config_options
@kubeflow_options
@click.option(
    "-o",
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="pipeline.yaml",
    show_default=True,
    help="Where to write the pipeline definition.",
)
def compile_command(config: PipelineConfig, options: KubeflowOptions, output_path: Path) -> None:
    """Compile the pipeline for Kubeflow Pipelines (KFP v2 YAML) to upload in the KFP UI or with `submit`.

    The configuration (--config and flags) becomes the defaults of the pipeline's parameters.
    """
    from hubpipe.pipeline.kubeflow.client import compile_pipeline

    path = compile_pipeline(config, options, output_path)
    click.echo(f"wrote {path} (image {options.image})")


@click.command("submit")
@config_options
@kubeflow_options
@click.option("--host", required=True, envvar="HUBPIPE_KFP_HOST", help="KFP API endpoint [env: HUBPIPE_KFP_HOST].")
@click.option("--experiment", default="hubpipe", show_default=True, help="Experiment to file the run under.")
@click.option("--namespace", help="Kubeflow profile namespace (multi-user installations).")
@click.option("--run-name", help="Name of the run [default: chosen by KFP].")
def submit_command(
    *,
    config: PipelineConfig,
    options: KubeflowOptions,
    host: str,
    experiment: str,
    namespace: str | None,
    run_name: str | None,
) -> None:
    """Compile the pipeline and start a run on a Kubeflow Pipelines host.

    Authentication: a bearer token in $HUBPIPE_KFP_TOKEN, else the service-account token file named by
    $KF_PIPELINES_SA_TOKEN_PATH (inside the cluster).
    """
    from hubpipe.pipeline.kubeflow.client import submit_pipeline

    run = submit_pipeline(config, options, host, experiment=experiment, namespace=namespace, run_name=run_name)
    click.echo(f"started run {run.run_id}: {run.url}")
