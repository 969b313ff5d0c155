import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/imagefactory.py

import os  # noqa: E402
import tempfile  # noqa: E402

# Built ONNX models go to a folder of the test run, never to the user's cache.
os.environ.setdefault("LOOKALIKE_CACHE_DIR", tempfile.mkdtemp(prefix="lookalike-test-cache-"))
os.environ.pop("LOOKALIKE_DB", None)
# The user's own models are listed in a file of the test run, never in the user's config.
os.environ["LOOKALIKE_MODELS_FILE"] = os.path.join(
    tempfile.mkdtemp(prefix="lookalike-test-models-"), "models.json")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def own_models_of_this_test(tmp_path_factory, monkeypatch):
    """Each test starts with no models of the user's own: one registered by a test (and left
    there by a failure, or on purpose) must not show up in another's model list."""
    folder = tmp_path_factory.mktemp("models")
    monkeypatch.setenv("LOOKALIKE_MODELS_FILE", str(folder / "models.json"))
