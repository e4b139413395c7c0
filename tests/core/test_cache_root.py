"""hubpipe's cache folder: where it is, and one line naming the setting when it cannot be made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubpipe.pipeline.core.cache_root import cache_root, writable_cache_root
from hubpipe.pipeline.core.errors import ConfigError

HUBPIPE = str(Path(sys.executable).with_name("hubpipe"))


def test_the_cache_root_follows_the_settings_and_is_created_when_a_run_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit" and not (tmp_path / "explicit").exists()
    assert writable_cache_root() == tmp_path / "explicit" and (tmp_path / "explicit").is_dir()
    monkeypatch.delenv("HUBPIPE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "hubpipe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "hubpipe"


def test_a_cache_folder_under_a_file_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("HUBPIPE_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.raises(ConfigError, match=r"\(from HUBPIPE_CACHE_DIR\) as hubpipe's cache folder: not a directory"):
        writable_cache_root()


def read_only_home_command(home: Path, command: list[str], missing_tool) -> list[str]:
    """``command`` run with ``home`` read-only: a read-only bind mount in a mount namespace of its own (root
    ignores permission bits); for another user, the folder's permission bits."""
    if os.geteuid() != 0:
        home.chmod(0o555)
        return command
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"mount --bind -o ro '{home}' '{home}' && ! touch '{home}/probe'"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        missing_tool(f"a read-only bind mount (unshare --mount) is not possible here: {probe.stderr.strip()}")
    mount = 'mount --bind -o ro "$HOME" "$HOME" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", mount, "sh", *command]


def test_a_read_only_home_without_a_cache_setting_fails_in_one_line(tmp_path: Path, missing_tool) -> None:
    from hubpipe.data.sample import SampleSpec, generate

    data = generate(tmp_path / "data", SampleSpec(train_per_class=2, test_per_class=1))
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("HUBPIPE_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    command = [HUBPIPE, "run", "--data", str(data), "--output", str(tmp_path / "run")]
    result = subprocess.run(
        read_only_home_command(home, command, missing_tool),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: cannot use {home}/.cache/hubpipe (from the home folder) as hubpipe's cache folder")
    assert line.endswith("; set HUBPIPE_CACHE_DIR (or XDG_CACHE_HOME) to a writable folder")
    assert not (home / ".cache").exists()
