"""`hubpipe submit`: credentials from the environment, and one clear line when the KFP API cannot be reached."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from hubpipe.pipeline.core.errors import SubmitError
from hubpipe.pipeline.kubeflow.client import (
    _api_error,
    check_health,
    client_credentials,
    warn_if_plain_http,
)


def closed_port() -> int:
    """A localhost port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_host_gives_one_line_and_exit_1() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "hubpipe.pipeline.cli", "submit", "--host", host, "--experiment", "e2e"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: cannot reach the Kubeflow Pipelines API at {host}: ")
    assert "Connection refused" in lines[-1]
    assert "Traceback" not in result.stderr


def test_a_host_that_refuses_the_token_gives_one_line_with_a_hint() -> None:
    """A stand-in API that answers 401 to everything, as an installation with authentication does."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401, "Unauthorized")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_GET

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "hubpipe.pipeline.cli", "submit", "--host", host],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "HUBPIPE_KFP_TOKEN": "expired"},
        )
    finally:
        server.shutdown()
    assert result.returncode == 1
    hint = "(set $HUBPIPE_KFP_TOKEN to a valid token)"
    warning, error = result.stderr.strip().splitlines()
    assert error == f"error: the Kubeflow Pipelines API at {host} answered 401 Unauthorized {hint}"
    assert "over plain http://" in warning  # a token was set


def test_submit_needs_a_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubpipe.pipeline.cli", "submit"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Missing option '--host'" in result.stderr


def test_credentials_come_from_the_environment(tmp_path: Path) -> None:
    assert client_credentials({"HUBPIPE_KFP_TOKEN": " abc "}) == {"existing_token": "abc"}
    missing = tmp_path / "absent-token"
    assert client_credentials({"KF_PIPELINES_SA_TOKEN_PATH": str(missing)}) == {}
    token_file = tmp_path / "token"
    token_file.write_text("sa-token")
    credentials = client_credentials({"KF_PIPELINES_SA_TOKEN_PATH": str(token_file)})["credentials"]
    assert credentials._get_token() == "sa-token"


def test_api_refusals_name_the_status_and_the_token_variable() -> None:
    from kfp_server_api.exceptions import ApiException

    error = _api_error("https://kfp.example", ApiException(status=403, reason="Forbidden"))
    assert isinstance(error, SubmitError)
    assert str(error) == (
        "the Kubeflow Pipelines API at https://kfp.example answered 403 Forbidden "
        "(set $HUBPIPE_KFP_TOKEN to a valid token)"
    )
    assert error.exit_code == 1


@pytest.mark.parametrize("status", [404, 500])
def test_other_refusals_have_no_token_hint(status: int) -> None:
    from kfp_server_api.exceptions import ApiException

    assert "HUBPIPE_KFP_TOKEN" not in str(_api_error("h", ApiException(status=status, reason="x")))


class StandInApi(http.server.BaseHTTPRequestHandler):
    """Just enough of the KFP v2beta1 API for a run submission; records what it receives."""

    received: ClassVar[list[tuple[str, str, dict]]] = []

    def _answer(self, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.received.append(("GET", self.path, {}))
        if self.path.startswith("/apis/v2beta1/healthz"):
            self._answer({"multi_user": False})
        else:
            self._answer({"experiments": []})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.received.append(("POST", self.path, body))
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._answer({"experiment_id": "exp-1", "display_name": body.get("display_name")})
        else:
            self._answer(self.run_answer)

    #: What a run submission gets back (KFP v2beta1: the created run, with its ``run_id``).
    run_answer: ClassVar[dict] = {"run_id": "run-1", "experiment_id": "exp-1"}

    def log_message(self, *args) -> None:
        pass


def test_a_run_is_created_with_the_compiled_pipeline() -> None:
    StandInApi.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "hubpipe.pipeline.cli", "submit", "--host", host, "--experiment", "nightly",
             "--run-name", "try-1", "--epochs", "4", "--pvc", "hubpipe-data"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"started run run-1: {host}/#/runs/details/run-1"
    (experiment,) = [body for method, path, body in StandInApi.received if path == "/apis/v2beta1/experiments"]
    assert experiment["display_name"] == "nightly"
    (run,) = [body for method, path, body in StandInApi.received if path.startswith("/apis/v2beta1/runs")]
    assert run["display_name"] == "try-1"
    assert run["experiment_id"] == "exp-1"
    spec, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "hubpipe"
    assert spec["root"]["inputDefinitions"]["parameters"]["epochs"]["defaultValue"] == 4
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-train"]["pvcMount"][0]["mountPath"] == "/mnt/hubpipe"


class RecordingHealth(http.server.BaseHTTPRequestHandler):
    """A health endpoint that records the Authorization header, or redirects to ``target`` when it is set."""

    target: ClassVar[str] = ""
    authorizations: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        if self.target and not self.path.startswith("/final"):
            self.send_response(302)
            self.send_header("Location", f"{self.target}/final{self.path}")
            self.end_headers()
            return
        type(self).authorizations.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def _serve(handler: type) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("same_origin", [False, True])
def test_the_token_never_follows_a_redirect_to_another_host(same_origin: bool) -> None:
    class Elsewhere(RecordingHealth):
        authorizations: ClassVar[list[str | None]] = []

    class Redirecting(RecordingHealth):
        authorizations: ClassVar[list[str | None]] = []

    other, first = _serve(Elsewhere), _serve(Redirecting)
    try:
        host = f"http://127.0.0.1:{first.server_address[1]}"
        Redirecting.target = host if same_origin else f"http://127.0.0.1:{other.server_address[1]}"
        check_health(host, "secret-token")
    finally:
        other.shutdown()
        first.shutdown()
    if same_origin:
        assert Redirecting.authorizations == ["Bearer secret-token"] and Elsewhere.authorizations == []
    else:
        assert Elsewhere.authorizations == [None] and Redirecting.authorizations == []


def test_a_token_over_plain_http_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="hubpipe.kubeflow"):
        warn_if_plain_http("https://kfp.example.com", "t")
        warn_if_plain_http("http://kfp.example.com", None)
        assert caplog.records == []
        warn_if_plain_http("http://kfp.example.com", "t")
    (record,) = caplog.records
    assert "plain http://" in record.getMessage() and "kfp.example.com" in record.getMessage()


@pytest.mark.parametrize("answer", [{}, {"run_id": ""}, {"display_name": "try-1", "experiment_id": "exp-1"}])
def test_an_answer_without_a_run_id_is_a_failure(answer: dict) -> None:
    """A 200 without a run id (e.g. a proxy answering for the API) must not read as a started run."""

    class Empty(StandInApi):
        received: ClassVar[list[tuple[str, str, dict]]] = []
        run_answer: ClassVar[dict] = answer

    server = _serve(Empty)
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "hubpipe.pipeline.cli", "submit", "--host", host, "--experiment", "e", "--pvc", "d"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: the Kubeflow Pipelines API at {host} answered without a run id")
    assert any(path.startswith("/apis/v2beta1/runs") for _, path, _ in Empty.received)
