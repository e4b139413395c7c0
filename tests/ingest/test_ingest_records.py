"""Split assignment, duplicate/leakage policies and --percent subsetting (pure functions, no Beam)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from hubpipe.components.ingest import quarantine as q
from hubpipe.components.ingest.records import (
    ImageMeta,
    Policies,
    assign_split,
    hash_fraction,
    resolve_content_group,
    select_percent,
    shard_count,
    shard_name,
)


def meta(path: str, label: str, split: str, content: str = "same") -> ImageMeta:
    digest = hashlib.sha256(content.encode()).hexdigest()
    return ImageMeta(path, path, label, split, digest, "jpeg", 10, 10, 100)


def test_hash_split_depends_on_content_only() -> None:
    metas = [meta(f"x/{i}.jpg", "x", "", content=str(i)) for i in range(2000)]
    splits = [assign_split(m, 0.25).split for m in metas]
    assert 0.2 < splits.count("test") / len(splits) < 0.3
    renamed = [assign_split(replace(m, path=f"moved/{m.path}"), 0.25).split for m in metas]
    assert renamed == splits
    assert all(assign_split(m, 0.25).split == ("test" if hash_fraction(m.sha256) < 0.25 else "train") for m in metas)


def test_given_split_is_kept() -> None:
    assert assign_split(meta("a", "x", "train"), 0.99).split == "train"


def test_duplicates_in_class_keep_the_first_path() -> None:
    result = resolve_content_group([meta("c/b.jpg", "c", "train"), meta("c/a.jpg", "c", "train")], Policies())
    assert [m.path for m in result.kept] == ["c/a.jpg"]
    assert [(e.path, e.reason) for e in result.quarantined] == [("c/b.jpg", q.DUPLICATE_IN_CLASS)]
    assert result.reports[0]["action"] == "dropped"


def test_conflicting_labels_drop_every_copy() -> None:
    result = resolve_content_group([meta("cat/a.jpg", "cat", "train"), meta("dog/a.jpg", "dog", "train")], Policies())
    assert result.kept == []
    assert {e.reason for e in result.quarantined} == {q.CONFLICTING_LABELS}
    assert "cat and dog" in result.quarantined[0].detail


def test_leakage_drops_the_training_copy() -> None:
    group = [meta("train/c/a.jpg", "c", "train"), meta("test/c/a.jpg", "c", "test")]
    result = resolve_content_group(group, Policies())
    assert [m.split for m in result.kept] == ["test"]
    assert [(e.path, e.reason) for e in result.quarantined] == [("train/c/a.jpg", q.TRAIN_TEST_LEAKAGE)]


@pytest.mark.parametrize("policy", ["keep", "fail"])
def test_keep_and_fail_keep_every_copy_and_fail_records_a_violation(policy: str) -> None:
    group = [
        meta("train/c/a.jpg", "c", "train"),
        meta("test/c/a.jpg", "c", "test"),
        meta("train/d/a.jpg", "d", "train"),
    ]
    result = resolve_content_group(group, Policies(policy, policy, policy))
    assert len(result.kept) == 3 and result.quarantined == []
    assert {r["kind"] for r in result.reports} == {q.CONFLICTING_LABELS, q.TRAIN_TEST_LEAKAGE}
    assert bool(result.violations) == (policy == "fail")


def test_percent_is_deterministic_keeps_one_and_is_stable_under_additions() -> None:
    metas = [meta(f"c/{i}.jpg", "c", "train", content=str(i)) for i in range(100)]
    kept, held_out = select_percent(metas, 10)
    assert len(kept) == 10 and held_out == 90
    assert select_percent(list(reversed(metas)), 10)[0] == kept
    more = metas + [meta(f"c/new{i}.jpg", "c", "train", content=f"new{i}") for i in range(10)]
    kept_more, _ = select_percent(more, 10)
    assert len(set(kept) & set(kept_more)) >= 9
    assert select_percent(metas[:3], 1)[0] == select_percent(metas[:3], 100)[0][:1]


def test_shard_names_match_the_example_format() -> None:
    assert shard_name("train", 3, 12) == "train-00003-of-00012.tfrecord"
    assert shard_count(1, 0) == 1 and shard_count(4001, 0) == 3 and shard_count(5, 8) == 5


def test_one_image_copied_into_many_classes_gives_short_details_and_violations() -> None:
    copies = [meta(f"class_{i:04d}/same.jpg", f"class_{i:04d}", "train") for i in range(1000)]
    dropped = resolve_content_group(copies, Policies())
    assert len(dropped.quarantined) == 1000
    assert max(len(e.detail) for e in dropped.quarantined) < 300
    assert dropped.quarantined[0].detail.endswith(" ... and 994 more)")
    assert len(dropped.reports[0]["paths"]) == 1000  # duplicates.json keeps every path
    refused = resolve_content_group(copies, Policies(duplicates_across_classes="fail"))
    assert refused.violations == [
        "conflicting_labels: class_0000/same.jpg, class_0001/same.jpg, class_0002/same.jpg, class_0003/same.jpg, "
        "class_0004/same.jpg ... and 995 more"
    ]
