"""Sources: layouts, safe archive extraction, downloads, gs://-style paths through tf.io.gfile, fingerprints."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from typing import ClassVar

import image_corpus as corpus
import pytest

from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.archives import extract_archive, member_parts
from hubpipe.components.ingest.download import download
from hubpipe.components.ingest.listing import list_dataset, normalize_label
from hubpipe.components.ingest.records import Limits, inspect_file
from hubpipe.components.ingest.sources import resolve_source, source_fingerprint
from hubpipe.pipeline.core.config import DataConfig, load_config
from hubpipe.pipeline.core.errors import DataError, UsageError

GIB = 1024**3


def test_split_layout_with_a_wrapping_folder_hidden_files_and_an_empty_class(tmp_path: Path) -> None:
    root = tmp_path / "wrap" / "dataset"
    corpus.simple_dataset(root, {"cat": (2, 1), "dog": (2, 1)})
    (root / "train" / "empty").mkdir()
    corpus.write(root / "train" / "cat" / ".DS_Store", b"x")
    corpus.write(root / "train" / "notes.txt", b"x")
    corpus.write(root / "valid" / "cat" / "x.jpg", corpus.jpeg(9))
    listing = list_dataset(str(tmp_path))
    assert listing.layout == "split"
    assert listing.root == str(root)
    assert sorted((f.path, f.label, f.split) for f in listing.files)[:2] == [
        ("wrap/dataset/test/cat/000.jpg", "cat", "test"),
        ("wrap/dataset/test/dog/000.jpg", "dog", "test"),
    ]
    assert listing.empty_classes == ["wrap/dataset/train/empty"]
    assert listing.hidden_skipped == 1
    assert {(e.path, e.reason) for e in listing.quarantined} == {
        ("wrap/dataset/train/notes.txt", q.OUTSIDE_CLASS_FOLDER),
        ("wrap/dataset/valid/cat/x.jpg", q.OUTSIDE_CLASS_FOLDER),
    }


def test_flat_layout_nested_folders_and_train_only_split_layout(tmp_path: Path) -> None:
    corpus.write(tmp_path / "flat" / "cat" / "2019" / "a.jpg", corpus.jpeg(1))
    corpus.write(tmp_path / "flat" / "dog" / "b.jpg", corpus.jpeg(2))
    flat = list_dataset(str(tmp_path / "flat"))
    assert flat.layout == "flat"
    assert sorted((f.label, f.split) for f in flat.files) == [("cat", ""), ("dog", "")]
    corpus.write(tmp_path / "only" / "train" / "cat" / "a.jpg", corpus.jpeg(1))
    assert {f.split for f in list_dataset(str(tmp_path / "only")).files} == {""}
    with pytest.raises(DataError, match="no train/ folder"):
        list_dataset(str(tmp_path / "flat"), layout="split")


def test_symlinks_outside_the_root_are_quarantined_inside_followed(tmp_path: Path) -> None:
    outside = corpus.write(tmp_path / "secret" / "passwd.jpg", corpus.jpeg(1))
    root = tmp_path / "data"
    corpus.write(root / "cat" / "a.jpg", corpus.jpeg(2))
    corpus.write(root / "dog" / "b.jpg", corpus.jpeg(3))
    (root / "cat" / "escape.jpg").symlink_to(outside)
    (root / "dog" / "alias.jpg").symlink_to(root / "dog" / "b.jpg")  # inside its class folder
    (root / "bird").symlink_to(tmp_path / "secret", target_is_directory=True)
    os.mkfifo(root / "dog" / "pipe.jpg")
    listing = list_dataset(str(root))
    assert {(e.path, e.reason) for e in listing.quarantined} == {
        ("cat/escape.jpg", q.SYMLINK_OUTSIDE_ROOT),
        ("bird", q.SYMLINK_OUTSIDE_ROOT),
        ("dog/pipe.jpg", q.NOT_A_REGULAR_FILE),
    }
    assert sorted(f.path for f in listing.files) == ["cat/a.jpg", "dog/alias.jpg", "dog/b.jpg"]


def _three_classes(root: Path) -> Path:
    for seed, label in enumerate(("bird", "bird", "cat", "cat", "dog", "dog")):
        corpus.write(root / label / f"{seed}.jpg", corpus.jpeg(seed))
    return root


def test_a_symlink_into_another_class_folder_is_reported_not_followed(tmp_path: Path) -> None:
    root = _three_classes(tmp_path / "data")
    (root / "bird" / "catlink").symlink_to("../cat", target_is_directory=True)
    (root / "bird" / "up").symlink_to("..", target_is_directory=True)
    corpus.write(root / "bird" / "sub" / "keep.jpg", corpus.jpeg(10))
    (root / "bird" / "sub" / "dog.jpg").symlink_to("../../dog/4.jpg")
    (root / "bird" / "same.jpg").symlink_to("sub/keep.jpg")  # stays in its class folder: followed
    (root / "cat" / "again").symlink_to(".", target_is_directory=True)  # its own folder: nothing new
    (root / "owl").symlink_to("dog", target_is_directory=True)  # a class folder that is another one
    listing = list_dataset(str(root))
    assert sorted((f.path, f.label) for f in listing.files) == [
        ("bird/0.jpg", "bird"),
        ("bird/1.jpg", "bird"),
        ("bird/same.jpg", "bird"),
        ("bird/sub/keep.jpg", "bird"),
        ("cat/2.jpg", "cat"),
        ("cat/3.jpg", "cat"),
        ("dog/4.jpg", "dog"),
        ("dog/5.jpg", "dog"),
    ]
    found = {e.path: e for e in listing.quarantined}
    assert set(found) == {"bird/catlink", "bird/up", "bird/sub/dog.jpg", "owl"}
    assert {e.reason for e in found.values()} == {q.SYMLINK_TO_OTHER_CLASS}
    assert found["bird/catlink"].detail == "symbolic link into the class folder cat; its images are ingested there"
    assert found["bird/up"].detail.startswith("symbolic link to a folder that holds the class folder ")
    assert listing.empty_classes == []


def test_in_the_split_layout_a_link_into_the_other_split_or_the_split_folder_is_reported(tmp_path: Path) -> None:
    root = corpus.simple_dataset(tmp_path / "data", {"cat": (2, 1), "dog": (2, 1)})
    (root / "train" / "cat" / "test_cats").symlink_to("../../test/cat", target_is_directory=True)
    (root / "train" / "dog" / "all").symlink_to("..", target_is_directory=True)
    (root / "extra").symlink_to("train/dog", target_is_directory=True)  # outside train/ and test/
    listing = list_dataset(str(root))
    assert {(e.path, e.reason) for e in listing.quarantined} == {
        ("train/cat/test_cats", q.SYMLINK_TO_OTHER_CLASS),
        ("train/dog/all", q.SYMLINK_TO_OTHER_CLASS),
        ("extra", q.SYMLINK_TO_OTHER_CLASS),
    }
    assert sorted((f.split, f.label) for f in listing.files) == [
        ("test", "cat"),
        ("test", "dog"),
        ("train", "cat"),
        ("train", "cat"),
        ("train", "dog"),
        ("train", "dog"),
    ]


@pytest.mark.parametrize(("first", "second"), [("Cat", "cat"), ("STRASSE", "Stra\u00dfe"), ("Éclair", "éclair")])
def test_class_folders_that_differ_only_in_letter_case_are_refused(tmp_path: Path, first: str, second: str) -> None:
    corpus.write(tmp_path / "d" / first / "a.jpg", corpus.jpeg(1))
    corpus.write(tmp_path / "d" / second / "b.jpg", corpus.jpeg(2))
    corpus.write(tmp_path / "d" / "dog" / "c.jpg", corpus.jpeg(3))
    names = sorted([first, second])
    message = rf"^class folders '{names[0]}' and '{names[1]}' in the data root differ only in letter case: .*rename one"
    with pytest.raises(DataError, match=message):
        list_dataset(str(tmp_path / "d"))


def test_class_names_are_normalised_but_kept() -> None:
    assert normalize_label("Crème brûlée") == "Crème brûlée"
    assert normalize_label("Cre\u0300me") == "Crème"  # NFD from a macOS zip becomes NFC
    assert normalize_label(" two\nlines ") == "two lines"


@pytest.mark.parametrize("name", ["gif\u202egpj.exe", "c\u200bat", "\u2067cat\u2069"])
def test_class_names_with_bidi_controls_or_invisible_spaces_are_refused(name: str) -> None:
    with pytest.raises(DataError, match=r"invisible or bidirectional control character; rename") as info:
        normalize_label(name)
    assert "\\u20" in str(info.value) and not any(ch in str(info.value) for ch in "\u202e\u200b\u2067")


def test_two_folders_that_become_one_class_are_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    corpus.write(tmp_path / "one" / "cat" / "a.jpg", corpus.jpeg(1))
    corpus.write(tmp_path / "one" / "cat " / "b.jpg", corpus.jpeg(2))
    corpus.write(tmp_path / "one" / "dog" / "c.jpg", corpus.jpeg(3))
    with pytest.raises(DataError, match=r"class folders 'cat' and 'cat ' .*both become class 'cat'"):
        list_dataset(str(tmp_path / "one"))
    corpus.write(tmp_path / "two" / "cat\t" / "a.jpg", corpus.jpeg(1))
    corpus.write(tmp_path / "two" / "dog" / "c.jpg", corpus.jpeg(3))
    with caplog.at_level("WARNING", logger="hubpipe.ingest"):
        assert list_dataset(str(tmp_path / "two")).classes() == ["cat", "dog"]
    assert "'cat\\u0009' is read as class 'cat'" in caplog.text


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("a/b.jpg", True),
        ("./a/b.jpg", True),
        ("../b.jpg", False),
        ("a/../../b.jpg", False),
        ("/etc/x", False),
        ("C:\\x.jpg", False),
        ("a\\..\\..\\b", False),
    ],
)
def test_member_names(name: str, safe: bool) -> None:
    assert isinstance(member_parts(name), tuple) == safe


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            bundle.writestr(info, target)
    return path


def test_zip_members_outside_the_folder_are_never_written(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "evil.zip",
        {
            "pets/cat/a.jpg": corpus.jpeg(1),
            "../escaped.jpg": b"x",
            "/tmp/abs.jpg": b"x",
            "pets/dog/big.jpg": b"x" * 5000,
        },
        links={"pets/dog/link.jpg": "/etc/passwd"},
    )
    extracted = extract_archive(archive, tmp_path / "cache", max_member_bytes=4000, max_total_bytes=GIB)
    assert not (tmp_path / "escaped.jpg").exists()
    assert not list((tmp_path / "cache").rglob("escaped.jpg"))
    assert (extracted.root / "pets" / "cat" / "a.jpg").read_bytes() == corpus.jpeg(1)
    assert {(s.path, s.reason) for s in extracted.skipped} == {
        ("../escaped.jpg", q.UNSAFE_ARCHIVE_MEMBER),
        ("/tmp/abs.jpg", q.UNSAFE_ARCHIVE_MEMBER),
        ("pets/dog/link.jpg", q.UNSAFE_ARCHIVE_MEMBER),
        ("pets/dog/big.jpg", q.FILE_TOO_LARGE),
    }
    again = extract_archive(archive, tmp_path / "cache", max_member_bytes=4000, max_total_bytes=GIB)
    assert again == extracted


def test_tar_links_devices_and_size_cap(tmp_path: Path) -> None:
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for name, data in {"d/cat/a.jpg": corpus.jpeg(1), "d/dog/../../../up.jpg": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
        for name, kind in (("d/cat/l.jpg", tarfile.SYMTYPE), ("d/cat/dev", tarfile.CHRTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            bundle.addfile(info)
    extracted = extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=GIB)
    assert sorted(p.name for p in extracted.root.rglob("*") if p.is_file()) == ["a.jpg"]
    assert {s.path for s in extracted.skipped} == {"d/dog/../../../up.jpg", "d/cat/l.jpg", "d/cat/dev"}
    with pytest.raises(DataError, match="max_extract_bytes"):
        extract_archive(archive, tmp_path / "cache2", max_member_bytes=GIB, max_total_bytes=10)


def test_a_cached_extraction_is_rechecked_against_a_lower_total_limit(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {"d/cat/a.jpg": b"x" * 3000, "d/dog/b.jpg": b"y" * 3000})
    extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=GIB)
    with pytest.raises(DataError, match="max_extract_bytes"):
        extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=5000)


@pytest.mark.parametrize("order", ["file_first", "folder_first"])
def test_a_name_that_is_both_a_file_and_a_folder_is_quarantined(tmp_path: Path, order: str) -> None:
    archive = tmp_path / "clash.zip"
    file_member = ("d/cat/x", corpus.jpeg(1))
    folder_members = [("d/cat/x/", b""), ("d/cat/x/b.jpg", corpus.jpeg(2))]
    members = [file_member, *folder_members] if order == "file_first" else [*folder_members, file_member]
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("d/cat/a.jpg", corpus.jpeg(3))
        for name, data in members:
            bundle.writestr(name, data)
    extracted = extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=GIB)
    assert (extracted.root / "d" / "cat" / "a.jpg").read_bytes() == corpus.jpeg(3)
    skipped = {s.path: s for s in extracted.skipped}
    clashing = {"d/cat/x/", "d/cat/x/b.jpg"} if order == "file_first" else {"d/cat/x"}
    assert set(skipped) == clashing
    assert all(s.reason == q.UNSAFE_ARCHIVE_MEMBER and "both a file and a folder" in s.detail for s in skipped.values())


def test_damaged_and_foreign_archives_give_one_line_errors(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(_zip(tmp_path / "ok.zip", {"a/b.jpg": b"x" * 100}).read_bytes()[:60])
    with pytest.raises(DataError, match="not a zip or tar archive"):
        extract_archive(damaged, tmp_path / "cache", GIB, GIB)
    not_archive = corpus.write(tmp_path / "photo.jpg", corpus.jpeg(1))
    with pytest.raises(UsageError, match=r"not a \.zip or \.tar archive"):
        resolve_source(DataConfig(source=str(not_archive)), tmp_path / "cache")
    with pytest.raises(UsageError, match=r"does not exist.*food101_10pct"):
        resolve_source(DataConfig(source=str(tmp_path / "nope")), tmp_path / "cache")


def test_url_download_is_verified_cached_and_extracted(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, folder = http_root
    archive = _zip(folder / "pets.zip", {"pets/cat/a.jpg": corpus.jpeg(1), "pets/dog/b.jpg": corpus.jpeg(2)})
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    first = download(f"{base}/pets.zip", cache, digest)
    assert first.read_bytes() == archive.read_bytes()
    with pytest.raises(DataError, match="sha256"):
        download(f"{base}/pets.zip", tmp_path / "other-cache", "0" * 64)
    assert not list((tmp_path / "other-cache").rglob("pets.zip*"))
    archive.unlink()
    assert download(f"{base}/pets.zip", cache, digest) == first  # reused: the server no longer has it
    resolved = resolve_source(DataConfig(source=f"{base}/pets.zip"), cache)
    assert resolved.kind == "url"
    assert sorted(f.label for f in list_dataset(resolved.location).files) == ["cat", "dog"]


def test_unreachable_url_is_one_data_error(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{base}/missing.zip", tmp_path)
    with pytest.raises(DataError, match="cannot download"):
        download("http://127.0.0.1:9/nothing.zip", tmp_path)
    assert not list(tmp_path.rglob("*.tmp-*"))


class EndlessHandler(http.server.BaseHTTPRequestHandler):
    """Streams up to 200 MB, without a Content-Length (or declaring all of it for /declared.zip)."""

    sent: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/declared.zip":
            self.send_header("Content-Length", str(200 * 1024**2))
        self.end_headers()
        chunk, sent = b"\0" * 65536, 0
        try:
            while sent < 200 * 1024**2:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            EndlessHandler.sent.append(sent)

    def log_message(self, *args) -> None:
        pass


def test_a_download_stops_at_the_size_limit_without_content_length(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), EndlessHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(DataError, match=r"over 10,485,760 bytes \(data.max_extract_bytes\)"):
            download(f"{base}/endless.zip", tmp_path / "cache", max_bytes=10 * 1024**2)
        with pytest.raises(DataError, match="over 10,485,760 bytes"):
            download(f"{base}/declared.zip", tmp_path / "cache", max_bytes=10 * 1024**2)
        with pytest.raises(DataError, match="over 1,024 bytes"):
            resolve_source(DataConfig(source=f"{base}/endless.zip", max_extract_bytes=1024), tmp_path / "cache")
    finally:
        server.shutdown()
        server.server_close()
    assert EndlessHandler.sent and max(EndlessHandler.sent) < 100 * 1024**2  # the client hung up early
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_gfile_paths_are_listed_and_read_through_tf_io_gfile(tmp_path: Path) -> None:
    from hubpipe.pipeline.core.runtime import import_tensorflow

    gfile = import_tensorflow().io.gfile
    base = "ram://hubpipe-test-bucket/pets"
    for name, data in {"cat/a.jpg": corpus.jpeg(1), "dog/b.jpg": corpus.jpeg(2), "dog/c.jpg": b""}.items():
        gfile.makedirs(f"{base}/{name.rsplit('/', 1)[0]}")
        with gfile.GFile(f"{base}/{name}", "wb") as handle:
            handle.write(data)
    config = load_config(overrides={"data.source": base})
    resolved = resolve_source(config.data, tmp_path)
    listing = list_dataset(resolved.location)
    assert sorted((f.path, f.label) for f in listing.files) == [
        ("cat/a.jpg", "cat"),
        ("dog/b.jpg", "dog"),
        ("dog/c.jpg", "dog"),
    ]
    results = {f.path: inspect_file(f, Limits(10_000, 10_000)) for f in listing.files}
    assert results["cat/a.jpg"].sha256 == hashlib.sha256(corpus.jpeg(1)).hexdigest()
    assert results["dog/c.jpg"].reason == q.EMPTY_FILE
    assert source_fingerprint(config, {}, None)["kind"] == "remote"


def test_fingerprints_are_cheap_and_change_with_the_data(tmp_path: Path) -> None:
    corpus.simple_dataset(tmp_path / "d", {"cat": (1, 1), "dog": (1, 1)})
    config = load_config(overrides={"data.source": str(tmp_path / "d")})
    first = source_fingerprint(config, {}, None)
    assert source_fingerprint(config, {}, None) == first
    corpus.write(tmp_path / "d" / "train" / "cat" / "new.jpg", corpus.jpeg(7))
    assert source_fingerprint(config, {}, None) != first
    sample = source_fingerprint(load_config(), {}, None)
    assert sample["kind"] == "sample" and sample["seed"] == 0
    preset = source_fingerprint(load_config(overrides={"data.source": "food101_10pct"}), {}, None)
    assert preset["url"].endswith("10_food_classes_10_percent.zip")
    with pytest.raises(UsageError, match="does not exist"):
        source_fingerprint(load_config(overrides={"data.source": "/does/not/exist"}), {}, None)


LONG_NAMES = {
    "pets/cat/" + "a" * 300 + ".jpg": corpus.jpeg(2),  # a file name over NAME_MAX
    "pets/" + "\u00e9" * 130 + "/x.jpg": corpus.jpeg(3),  # 130 characters, 260 bytes
    "pets/dog/" + "/".join(["b" * 250] * 17) + "/y.jpg": corpus.jpeg(4),  # a path over PATH_MAX
}


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_member_name_too_long_for_the_file_system_is_quarantined(tmp_path: Path, kind: str) -> None:
    members = {"pets/cat/ok.jpg": corpus.jpeg(1), **LONG_NAMES, "pets/dog/ok.jpg": corpus.jpeg(5)}
    archive = _zip(tmp_path / "pets.zip", members) if kind == "zip" else _tar(tmp_path / "pets.tar.gz", members)
    extracted = extract_archive(archive, tmp_path / "cache", max_member_bytes=GIB, max_total_bytes=GIB)
    assert {(s.path, s.reason) for s in extracted.skipped} == {(name, q.NAME_TOO_LONG) for name in LONG_NAMES}
    assert all("the file system allows" in s.detail for s in extracted.skipped)
    listing = list_dataset(str(extracted.root))
    assert sorted((f.path, f.label) for f in listing.files) == [("pets/cat/ok.jpg", "cat"), ("pets/dog/ok.jpg", "dog")]


class StallingHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD; the first request stops after STALL_AT bytes until ``release`` is set."""

    PAYLOAD = os.urandom(3 * 1024 * 1024)
    STALL_AT = 2 * 1024 * 1024
    release = threading.Event()
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        first = not self.requests
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.PAYLOAD)))
        self.end_headers()
        try:
            if first:
                self.wfile.write(self.PAYLOAD[: self.STALL_AT])
                self.wfile.flush()
                self.release.wait(60)
                return
            self.wfile.write(self.PAYLOAD)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


def test_the_partial_file_of_a_killed_download_is_removed_by_the_next_download(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/pets.zip"
    cache = tmp_path / "cache"
    code = (
        "from pathlib import Path\n"
        "from hubpipe.components.ingest.download import download\n"
        f"download({url!r}, Path({str(cache)!r}))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        partial = _wait_for_partial(cache, child)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert partial.is_file() and partial.stat().st_size >= 1024 * 1024
    finally:
        if child.poll() is None:
            child.kill()
        StallingHandler.release.set()
    try:
        target = download(url, cache)
    finally:
        server.shutdown()
        server.server_close()
    assert target.read_bytes() == StallingHandler.PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["download.json", "pets.zip"]


def _wait_for_partial(cache: Path, child: subprocess.Popen) -> Path:
    """The downloader's temporary file once it holds at least a chunk (1 MiB)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        found = [p for p in cache.rglob(".pets.zip.tmp-*") if not p.name.endswith(".lock")]
        if found and found[0].stat().st_size >= 1024 * 1024:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no partial download appeared (the downloader exited with {child.poll()})")
