"""The container tests run the project image with podman: `make image`, then `make test-containers`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest
from podman import docker_api_socket, image_name, missing_prerequisite, new_containers


@pytest.fixture(scope="session")
def image(missing_tool: Callable[[str], NoReturn]) -> str:
    """The project image, built by `make image`; missing: a skip here, a failure in CI (HUBPIPE_REQUIRE_TOOLS)."""
    reason = missing_prerequisite()
    if reason:
        missing_tool(reason)
    return image_name()


@pytest.fixture(scope="session")
def docker_api(image: str) -> Iterator[str]:
    """podman's Docker-compatible API, started for the session and stopped after it; yields DOCKER_HOST."""
    with docker_api_socket() as url:
        yield url


@pytest.fixture
def remove_containers_of(image: str) -> Iterator[Callable[[], list[dict]]]:
    """Lists the containers of the image made during the test, then removes them."""
    with new_containers(image) as made:
        yield made
