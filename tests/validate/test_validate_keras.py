"""TFDV imports TensorFlow itself: hubpipe must select legacy Keras before that, or training in the same
process later fails (``hubpipe run`` with the ingest stage cached runs validate first)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_validate_imports_tfdv_with_legacy_keras_selected() -> None:
    script = (
        "from hubpipe.components.validate.statistics import load_statistics\n"
        "try:\n"
        "    load_statistics('/nonexistent/stats.pb')\n"
        "except Exception:\n"
        "    pass\n"
        "import tensorflow as tf\n"
        "print(tf.keras.Model.__module__)\n"
        "tf.keras.mixed_precision.set_global_policy(tf.keras.mixed_precision.global_policy())\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("tf_keras.")
