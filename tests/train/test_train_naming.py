"""Model names derived from backbone names."""

from __future__ import annotations

from hubpipe.components.train.naming import model_slug, unique_model_names


def test_preset_names_stay_and_handles_become_short_slugs() -> None:
    assert model_slug("efficientnet_lite0") == "efficientnet_lite0"
    assert model_slug("https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/4") == (
        "resnet_v2_50_feature_vector_4"
    )
    assert model_slug("/data/models/my backbone") == "my_backbone"
    assert model_slug("gs://bucket/models/mobilenet/") == "bucket_models_mobilenet"
    assert model_slug("/") == "backbone"


def test_names_are_unique_and_avoid_the_baseline_and_fine_tuned_names() -> None:
    names = unique_model_names(["/a/net", "/b/net", "scratch_cnn", "/c/net_fine_tuned"])
    assert names == ["net", "net_2", "scratch_cnn_2", "net_fine_tuned_2"]
    assert len(set(names)) == len(names)
