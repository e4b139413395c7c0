"""The Kubeflow client: compiles the pipeline to YAML and submits it to a Kubeflow Pipelines host.

This is where environment decisions are made: the configuration as the cluster sees it (backbones baked into
the image, the publish root on the mounted volume) and the API credentials. The pipeline itself comes from
:func:`hubpipe.pipeline.kubeflow.pipeline_definition.create_pipeline`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import posixpath
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubpipe.components.common.publish_root import TENSORBOARD_DIR
from hubpipe.pipeline.core.artifacts import write_text_atomic
from hubpipe.pipeline.core.config import PipelineConfig, apply_overrides
from hubpipe.pipeline.core.errors import SubmitError, UsageError
from hubpipe.pipeline.kubeflow.options import KubeflowOptions

LOG = logging.getLogger("hubpipe.kubeflow")

#: A bearer token for the KFP API, e.g. from `gcloud auth print-access-token` or a Dex session.
TOKEN_ENV = "HUBPIPE_KFP_TOKEN"
#: Kubeflow's own variable for a projected service-account token file (used inside the cluster).
SA_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_DEFAULT_PATH = "/var/run/secrets/kubeflow/pipelines/token"


@dataclass(frozen=True)
class SubmittedRun:
    """A run the KFP API accepted: its id and where the KFP UI shows it."""

    run_id: str
    url: str


def cluster_config(config: PipelineConfig, options: KubeflowOptions) -> PipelineConfig:
    """``config`` as the pipeline's defaults on the cluster.

    Offline backbone presets need nothing: the image bakes them in and names the folder in
    ``$HUBPIPE_MODELS_DIR``. With a volume, the publish root defaults to ``<mount>/published``, and a root on the
    volume makes the Tensorboard resource point at its logs (``pvc://<pvc>/<root in the volume>/tensorboard``).
    """
    overrides: dict[str, Any] = {}
    root = config.publish.root
    mount = options.pvc_mount_path.rstrip("/")
    if options.pvc_name and not root:
        root = overrides["publish.root"] = f"{mount}/published"
    if options.pvc_name and not config.publish.pvc_name and (root == mount or root.startswith(f"{mount}/")):
        overrides["publish.pvc_name"] = options.pvc_name
        overrides["publish.pvc_path"] = posixpath.normpath(
            posixpath.join(posixpath.relpath(root, mount), TENSORBOARD_DIR)
        )
    if not options.pvc_name and not storage_is_remote(root):
        LOG.warning(
            "publish.root is %s: the published models and logs would stay in the task's pod; mount a volume "
            "(--pvc) or set a gs:// publish root",
            repr(root) if root else "empty",
        )
    warn_local_data(config, options)
    return apply_overrides(config, overrides)


def warn_local_data(config: PipelineConfig, options: KubeflowOptions) -> None:
    """One warning when ``data.source`` is a path of this machine that the pipeline's pods will not see: not on
    the volume mounted in every task (``--pvc``, at ``--pvc-mount``), not a URL or bucket, not a preset."""
    from hubpipe.components.ingest.sources import parse_source

    ref = parse_source(config.data)
    if ref.kind != "local":
        return
    mount = options.pvc_mount_path.rstrip("/")
    if options.pvc_name and (ref.value == mount or ref.value.startswith(f"{mount}/")):
        return
    where = f"on the volume mounted at {mount} (--pvc {options.pvc_name})" if options.pvc_name else "on a volume"
    LOG.warning(
        "data.source %s is a path: the pipeline's pods will not see it unless it is %s or in a bucket (gs://); "
        "copy the images there and pass that path",
        ref.value,
        where,
    )


def storage_is_remote(path: str) -> bool:
    return path.startswith(("gs://", "s3://"))


def compile_pipeline(config: PipelineConfig, options: KubeflowOptions, path: Path) -> Path:
    """Writes the pipeline of the registered stages as KFP YAML to ``path`` (atomically); returns it."""
    from kfp import compiler

    from hubpipe.pipeline.kubeflow.pipeline_definition import create_pipeline
    from hubpipe.pipeline.stages import registered_stages

    stages = registered_stages()
    if not stages:
        raise UsageError("no stages are registered in hubpipe.pipeline.stages; nothing to compile")
    pipeline = create_pipeline(cluster_config(config, options), options, stages)
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name such as pipeline.yaml")
    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(compiled))
        write_text_atomic(path, integer_defaults(compiled.read_text(encoding="utf-8")))
    return path


def integer_defaults(text: str) -> str:
    """The compiled YAML with integer parameters' defaults written as integers.

    KFP keeps every number of the spec as a protobuf double, so ``epochs`` would show ``5.0`` in the file, its
    header comment and the KFP UI. The spec is written back as KFP writes it (its header comment, then the
    documents with sorted keys).
    """
    import yaml

    lines = text.splitlines(keepends=True)
    header = "".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    header = re.sub(r"^(#\s+\w+: int \[Default: -?\d+)\.0\]$", r"\1]", header, flags=re.MULTILINE)
    documents = list(yaml.safe_load_all(text))
    spec = documents[0]
    definitions = [spec.get("root", {}), *spec.get("components", {}).values()]
    for definition in definitions:
        for parameter in definition.get("inputDefinitions", {}).get("parameters", {}).values():
            default = parameter.get("defaultValue")
            if parameter.get("parameterType") == "NUMBER_INTEGER" and isinstance(default, float):
                parameter["defaultValue"] = int(default)
    return header + yaml.dump_all(documents, sort_keys=True)


def bearer_token(environ: Mapping[str, str]) -> str | None:
    """The KFP API token: ``$HUBPIPE_KFP_TOKEN``, else the service-account token file, else none."""
    token = environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    token_path = Path(environ.get(SA_TOKEN_PATH_ENV) or SA_TOKEN_DEFAULT_PATH)
    try:
        return token_path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def client_credentials(environ: Mapping[str, str]) -> dict[str, Any]:
    """kfp.Client arguments for authentication: ``$HUBPIPE_KFP_TOKEN``, else a service-account token file."""
    token = environ.get(TOKEN_ENV, "").strip()
    if token:
        return {"existing_token": token}
    token_path = environ.get(SA_TOKEN_PATH_ENV) or SA_TOKEN_DEFAULT_PATH
    if Path(token_path).is_file():
        from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

        return {"credentials": ServiceAccountTokenVolumeCredentials(path=token_path)}
    return {}


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but sends the Authorization header only to the origin (scheme, host, port) it was for.

    urllib's own handler copies every header onto the redirected request, wherever it points.
    """

    def redirect_request(self, req: urllib.request.Request, *args: Any, **kwargs: Any) -> urllib.request.Request | None:
        new = super().redirect_request(req, *args, **kwargs)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), f"{(parts.hostname or '').lower()}:{parts.port or default_port}"


def warn_if_plain_http(host: str, token: str | None) -> None:
    """A bearer token sent over plain http:// can be read by anyone on the way."""
    if token and host.lower().startswith("http://"):
        LOG.warning("sending the KFP API token to %s over plain http://: use https:// outside a trusted network", host)


def check_health(host: str, token: str | None, timeout_s: float = 15.0) -> None:
    """One request to the API's health endpoint; raises SubmitError with the reason when it does not answer 200.

    kfp.Client checks the same endpoint, but retries for half a minute and logs a traceback per attempt.
    A redirect to another origin is followed without the token.
    """
    url = f"{host.rstrip('/')}/apis/v2beta1/healthz"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    opener = urllib.request.build_opener(_SameOriginCredentials)
    try:
        with opener.open(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        hint = f" (set ${TOKEN_ENV} to a valid token)" if exc.code in (401, 403) else ""
        raise SubmitError(f"the Kubeflow Pipelines API at {host} answered {exc.code} {exc.reason}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        detail = getattr(reason, "strerror", None) or str(reason)
        raise SubmitError(f"cannot reach the Kubeflow Pipelines API at {host}: {detail}") from None


def _api_error(host: str, exc: Exception) -> SubmitError:
    """One line for a failed API call: unreachable host, or the HTTP status the API answered."""
    import urllib3

    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        reason = exc.reason
        detail = str(getattr(reason, "reason", None) or reason or exc)
        if "Errno" in detail or "Failed to establish" in detail:
            detail = detail.rsplit("]", 1)[-1].strip() or detail
        return SubmitError(f"cannot reach the Kubeflow Pipelines API at {host}: {detail}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return SubmitError(f"cannot reach the Kubeflow Pipelines API at {host}: {exc}")
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    hint = f" (set ${TOKEN_ENV} to a valid token)" if status in (401, 403) else ""
    return SubmitError(f"the Kubeflow Pipelines API at {host} answered {status} {reason}{hint}")


def submit_pipeline(
    config: PipelineConfig,
    options: KubeflowOptions,
    host: str,
    *,
    experiment: str,
    namespace: str | None = None,
    run_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> SubmittedRun:
    """Connects to the KFP API at ``host``, compiles the pipeline and starts a run of it."""
    if not host.startswith(("http://", "https://")):
        raise UsageError(f"--host must be the http:// or https:// URL of the KFP API, got {host!r}")
    environ = os.environ if environ is None else environ
    token = bearer_token(environ)
    warn_if_plain_http(host, token)
    check_health(host, token)
    with _api_calls(host):
        import kfp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # kfp.Client's notice about KFP versions
            client = kfp.Client(host=host, namespace=namespace, **client_credentials(environ))  # checks health
    with tempfile.TemporaryDirectory(prefix="hubpipe-submit-") as tmp:
        package = compile_pipeline(config, options, Path(tmp) / "pipeline.yaml")
        with _api_calls(host), contextlib.redirect_stdout(io.StringIO()):  # kfp prints its own links
            run = client.create_run_from_pipeline_package(
                str(package), arguments={}, run_name=run_name, experiment_name=experiment, namespace=namespace
            )
    run_id = _run_id(host, run)
    return SubmittedRun(run_id=run_id, url=f"{host.rstrip('/')}/#/runs/details/{run_id}")


def _run_id(host: str, run: Any) -> str:
    """The id of the run the API created (KFP v2beta1's ``run_id``); SubmitError when its answer holds none.

    The client builds its result from whatever JSON the API answered, so a 200 ``{}`` (a proxy or a login page
    answering for the API) would otherwise read as a run with no id.
    """
    run_id = getattr(run, "run_id", None)
    if not isinstance(run_id, str) or not run_id.strip():
        raise SubmitError(
            f"the Kubeflow Pipelines API at {host} answered without a run id, so no run is known "
            "to have started: check that --host is the KFP API (e.g. https://HOST/pipeline)"
        )
    return run_id


@contextlib.contextmanager
def _api_calls(host: str) -> Iterator[None]:
    """Turns the KFP client's connection and HTTP errors into one SubmitError line.

    Warnings logged meanwhile (urllib3's retries, kfp's health-check attempts) are held back: the error says it.
    """
    import urllib3
    from kfp_server_api.exceptions import ApiException

    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
        raise _api_error(host, exc) from None
    finally:
        logging.disable(disabled)
