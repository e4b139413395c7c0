"""Publishing as a compare-and-swap of LATEST, and finishing a publish that was killed before LATEST moved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fake_run import FakeWorld
from test_publish_stage import Run

from hubpipe.components.common import publish_root as layout
from hubpipe.pipeline.core.errors import PublishConflict


def test_latest_moves_only_from_what_the_evaluation_compared_with(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    late = Run(world, world.train_better, tmp_path / "late", root)
    late.evaluate()  # nothing blessed yet: "better" is compared with nothing
    _, other = Run(world, world.train_good_and_weak, tmp_path / "other", root).both()  # publishes meanwhile

    with pytest.raises(PublishConflict, match=r"lost a race: LATEST .* moved from nothing to ") as raised:
        late.publish()
    assert raised.value.exit_code == 4
    assert layout.read_latest_id(str(root)) == other.results["latest"]
    assert late.blessing["evaluation_id"] not in [p.name for p in (root / "models").iterdir()]

    again = Run(world, world.train_better, tmp_path / "late-again", root)
    evaluation, publication = again.both()  # a rerun evaluates against the new LATEST
    assert evaluation.results["compared_with"] == other.results["latest"]
    assert again.blessing["reference"]["latest_seen"] == other.results["latest"]
    assert layout.read_latest_id(str(root)) == publication.results["published_version"]


def test_a_complete_version_whose_latest_move_was_lost_gets_latest_on_rerun(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    _, first = Run(world, world.train_good_and_weak, tmp_path / "run1", root).both()
    second = Run(world, world.train_better, tmp_path / "run2", root)
    _, published = second.both()
    version = published.results["published_version"]
    # What a kill between the version folder and LATEST leaves: the version complete, LATEST on the old one.
    (root / "models" / "LATEST").write_text(first.results["latest"] + "\n")
    (tmp_path / "run2" / "publish").rename(tmp_path / "run2" / "publish-killed")

    retried = second.publish()
    assert layout.read_latest_id(str(root)) == version
    assert retried.results["published_version"] == version and "LATEST moved to it now" in retried.results["note"]


def test_publishing_an_older_evaluation_again_is_a_lost_race(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    older = Run(world, world.train_good_and_weak, tmp_path / "run1", root)
    _, first = older.both()
    _, second = Run(world, world.train_better, tmp_path / "run2", root).both()
    (tmp_path / "run1" / "publish").rename(tmp_path / "run1" / "publish-before")
    with pytest.raises(PublishConflict):
        older.publish()
    assert layout.read_latest_id(str(root)) == second.results["published_version"] != first.results["latest"]


def test_leftovers_of_a_killed_publisher_are_removed_under_the_lock(world: FakeWorld, tmp_path: Path) -> None:
    root = tmp_path / "published"
    (root / "models" / ".tmp-20260101-abc-1234").mkdir(parents=True)
    (root / "models" / ".tmp-20260101-abc-1234" / "half.bin").write_bytes(b"x")
    (root / "models" / "LATEST.tmp-0123456789ab").write_text("v0\n")
    assert len(layout.killed_publish_leftovers(str(root))) == 2
    Run(world, world.train_good_and_weak, tmp_path / "run", root).both()
    assert sorted(p.name for p in (root / "models").iterdir() if p.name.startswith((".", "LATEST."))) == []
    assert layout.killed_publish_leftovers(str(root)) == []


def test_a_publisher_waits_for_the_lock_of_another_process(tmp_path: Path) -> None:
    """While another process holds the root's lock, taking it waits; a killed holder releases it."""
    root = tmp_path / "published"
    root.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from hubpipe.components.common import publish_root as layout\n"
            f"with layout.locked({str(root)!r}):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        waiter = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from hubpipe.components.common import publish_root as layout\n"
                f"with layout.locked({str(root)!r}):\n"
                "    print('got it')\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(timeout=2)
        holder.kill()
        out, _ = waiter.communicate(timeout=30)
        assert out.strip() == "got it"
    finally:
        holder.kill()
        holder.wait()
