"""The web viewer under abuse: generated requests against its OpenAPI description, a
collection indexed while it serves, and many clients at once. Real processes on loopback
(`lookalike serve`, `lookalike index`), except the schema fuzzing, which calls the ASGI app
in-process to try thousands of requests in seconds."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image, ImageEnhance
from schemathesis import GenerationMode

import lookalike
from imagefactory import pattern
from lookalike.web import create_app
from test_indexing import photo_families

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import load  # noqa: E402  (benchmarks/load.py: the closed-loop HTTP client)

MODEL = "squeezenet"

pytestmark = pytest.mark.load  # left out of ./test.sh --fast


def _import_every_schemathesis_module() -> None:
    """Pytest rewrites the modules of installed plugins as they are imported, parsing them
    with `ast`; CPython 3.11.7 can fail that parse with "AST constructor recursion depth
    mismatch" when another thread parses at the same time (as the background threads of
    servers started by earlier tests do). Schemathesis imports modules lazily mid-test, so
    they are all imported here, at collection, while no other thread runs."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
        try:
            importlib.import_module(module.name)
        except Exception:  # noqa: BLE001 - an optional extra of schemathesis: not used here
            pass


_import_every_schemathesis_module()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Sixteen photos in four categories, indexed: a small collection to abuse."""
    root = tmp_path_factory.mktemp("abuse")
    photo_families(root / "photos")
    lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL).close()
    return root / "photos.db"


class Serve:
    """`lookalike serve --port 0` as a real process; `url` once it listens."""

    def __init__(self, db: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", "--db", str(db),
                                      "--port", "0"], stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if not found:
            self.proc.kill()
            raise AssertionError(f"lookalike serve did not start: {line}{self.proc.stderr.read()}")
        self.url = found.group(1)
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            assert self.proc.wait(30) == 0
        finally:
            self.proc.kill()
        assert not [line for line in self.log if "Traceback" in line or "error" in line], self.log


# -- the OpenAPI description, fuzzed -----------------------------------------------------------

def test_generated_requests_get_no_500_and_answers_match_the_schema(photos):
    """Schemathesis generates requests from /openapi.json, both valid ones and ones that
    break the schema, and checks every answer: never a 500, status codes and bodies as
    documented, schema-breaking requests refused, content types as declared.

    One check is left out: `positive_data_acceptance` expects every schema-valid request to
    be accepted, but the schema cannot say which images, metrics and models this collection
    has (metric and model are free strings, compared without case; an upload is any bytes).
    Refusing those is right and documented: 400 for a metric or model the collection cannot
    use, 404 for an id it does not hold, 415 for an upload that is not an image."""
    app = create_app(photos, allowed_hosts=["testserver"])  # the in-process client's host name
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    some_image = {"image_id": 3}  # one that exists: thumbnails and originals get made
    requests = st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                         schema.as_strategy(GenerationMode.NEGATIVE),
                         schema.as_strategy(GenerationMode.POSITIVE, path_parameters=some_image))
    answered = []

    @settings(max_examples=1200, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(requests)
    def check(case):
        response = case.call_and_validate(
            excluded_checks=[schemathesis.checks.positive_data_acceptance])
        answered.append((case.method, case.path, response.status_code))

    check()
    statuses = {status for _, _, status in answered}
    assert 200 in statuses and 422 in statuses and max(statuses) < 500
    covered = {(method, path) for method, path, _ in answered}
    assert len(covered) == len(list(schema.get_all_operations())), covered


# -- reading while another process writes -----------------------------------------------------

def test_the_viewer_keeps_answering_while_index_writes_and_shows_the_new_images(tmp_path):
    first, later = tmp_path / "first", tmp_path / "later"
    for i in range(30):
        (first / f"g{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pattern(120, 90, seed=i)).save(first / f"g{i % 3}" / f"old{i:03d}.png")
    later.mkdir()
    for i in range(60):  # twins: each new image has a slightly brighter look-alike
        im = Image.fromarray(pattern(120, 90, seed=1000 + i))
        im.save(later / f"pair{i:03d}_a.png")
        ImageEnhance.Brightness(im).enhance(1.1).save(later / f"pair{i:03d}_b.png")
    db = tmp_path / "c.db"
    index = [sys.executable, "-m", "lookalike", "index", "--db", str(db), "--model", MODEL,
             "--quiet", "--batch-size", "8", "--threads", "1"]
    subprocess.run(index + [str(first)], check=True, timeout=300, capture_output=True)
    server = Serve(db)
    counts, failures, done = [], [], threading.Event()

    def poll():
        rng = random.Random(1)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not done.is_set():
                answers = [client.get("/api/collection"),
                           client.post("/api/neighbors",
                                       json={"references": [rng.randint(1, 30)], "k": 5}),
                           client.get("/api/images", params={"offset": rng.randint(0, 100),
                                                             "limit": 50})]
                failures.extend(f"{a.request.url}: {a.status_code} {a.text[:200]}"
                                for a in answers if a.status_code != 200)
                if answers[0].status_code == 200:
                    counts.append(answers[0].json()["count"])
                if answers[1].status_code == 200 and len(answers[1].json()["neighbors"]) != 5:
                    failures.append(f"not 5 look-alikes: {answers[1].text[:200]}")

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.3)
        writer = subprocess.run(index + [str(first), str(later)], timeout=300,
                                capture_output=True, text=True)
        time.sleep(0.3)
    finally:
        done.set()
        poller.join(60)
    try:
        assert writer.returncode == 0, writer.stderr
        assert not failures, failures[:5]
        assert counts[0] == 30 and counts[-1] == 150
        assert counts == sorted(counts)                     # never a step back
        assert any(30 < n < 150 for n in counts), counts    # new images showed up mid-run
        # A new image is a reference like any other, and its twin is its nearest look-alike:
        # the viewer searches the new vectors, not a matrix loaded before they came.
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in (0, 31, 59):
                found = client.get("/api/images", params={"q": f"pair{i:03d}_a"}).json()
                assert found["total"] == 1
                answer = client.get("/api/neighbors", params={"ref": found["items"][0]["id"],
                                                              "k": 1})
                assert answer.status_code == 200, answer.text
                assert answer.json()["neighbors"][0]["name"] == f"pair{i:03d}_b"
    finally:
        server.stop()


# -- many clients at once ---------------------------------------------------------------------

def test_fifty_clients_at_once_get_only_answers(photos):
    """A short version of benchmarks/abuse_load.py: 50 keep-alive clients, each sending its
    next request as soon as the last is answered, 6 each: look-alikes and thumbnails, all
    answered, none refused, none dropped (latency is the benchmark's business). A count of
    requests, not a duration, so that a slow machine is held to the same work."""
    server = Serve(photos)
    try:
        ids = list(range(1, 17))
        result = load.run(server.url, load.mixed(ids), clients=50, requests_per_client=6,
                          seed=1)
    finally:
        server.stop()
    summary = result.summary()
    assert summary["errors"] == 0, summary["error_examples"]
    assert set(summary["by_kind"]) == {"neighbors", "thumbnails"}
    assert sum(kind["requests"] for kind in summary["by_kind"].values()) == 300, summary
    assert np.isfinite(summary["by_kind"]["neighbors"]["p95_ms"])
