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
