"""Downloading images by URL from a real HTTP server: retries, timeouts, limits, sniffing, cache."""

import base64
import socket

import pytest

from imageserver import ImageServer, jpeg_bytes, png_bytes
from lookalike.ingest.downloads import (
    Downloader,
    DownloadFailed,
    decode_data_url,
    is_url,
    sniff,
    url_name,
    url_scheme,
)

PNG = png_bytes()


@pytest.fixture
def server():
    with ImageServer() as s:
        yield s


@pytest.fixture
def downloader(tmp_path):
    with Downloader(cache=tmp_path / "cache", timeout=0.5, retries=2, backoff=0.05,
                    max_bytes=200_000) as d:
        yield d


def failure(downloader, url) -> str:
    with pytest.raises(DownloadFailed) as info:
        downloader.fetch(url)
    return info.value.reason


def test_a_good_image_is_downloaded_once_then_read_from_the_cache(server, downloader, tmp_path):
    url = server.add("/cat.png", PNG)
    first = downloader.fetch(url)
    assert first.data == PNG and first.downloaded
    assert downloader.cache_path(url).read_bytes() == PNG
    again = downloader.fetch(url)
    assert again.data == PNG and not again.downloaded
    with Downloader(cache=tmp_path / "cache") as other:   # another run, same cache
        assert other.fetch(url).data == PNG
    assert server.hits["/cat.png"] == 1


def test_the_bytes_decide_not_the_name_or_the_content_type(server, downloader):
    jpeg = server.add("/photo?id=7", jpeg_bytes(), content_type="application/octet-stream")
    assert downloader.fetch(jpeg).data[:2] == b"\xff\xd8"
    text = server.add("/fake.png", b"this is not a png, just text\n", content_type="image/png")
    reason = failure(downloader, text)
    assert reason.startswith("not an image (the server sent image/png, 29 bytes starting "
                             "'this is not a png")
    assert not downloader.cache_path(text).exists()       # nothing cached: tried again next time
    html = server.add("/page.jpg", b"<html>moved</html>", content_type="text/html; charset=utf-8")
    assert "the server sent text/html" in failure(downloader, html)


def test_404_is_not_retried(server, downloader):
    assert failure(downloader, server.url("/missing.png")) == \
        "download failed: HTTP 404 Not Found"
    assert server.hits["/missing.png"] == 1
    gone = server.add("/gone.png", status=410, content_type="text/plain")
    assert failure(downloader, gone) == "download failed: HTTP 410 Gone"
    assert server.hits["/gone.png"] == 1


def test_a_server_error_is_retried_with_growing_waits(server, downloader):
    url = server.add("/flaky.png", PNG, fail_first=2)
    assert downloader.fetch(url).data == PNG
    assert server.hits["/flaky.png"] == 3
    broken = server.add("/down.png", PNG, fail_first=99, fail_status=503)
    assert failure(downloader, broken) == \
        "download failed: HTTP 503 Service Unavailable (3 tries)"
    times = server.times["/down.png"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 2 and gaps[0] >= 0.05 and gaps[1] >= 0.1     # backoff 0.05 s, doubled


def test_too_many_requests_waits_as_the_server_asks(server, downloader):
    url = server.add("/busy.png", PNG, fail_first=1, fail_status=429,
                     headers={"Retry-After": "1"})
    assert downloader.fetch(url).data == PNG
    first, second = server.times["/busy.png"]
    assert second - first >= 0.9


@pytest.mark.slow  # over a second on the 2-core machine
def test_a_slow_server_times_out_after_the_retries(server, downloader):
    url = server.add("/slow.png", PNG, delay=2.0)
    assert failure(downloader, url) == \
        "download failed: timed out, nothing received for 0.5 s (3 tries)"
    assert server.hits["/slow.png"] == 3


def test_a_refused_connection_is_reported(downloader):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]   # closed again: nothing listens there
    reason = failure(downloader, f"http://127.0.0.1:{port}/x.png")
    assert reason == "download failed: connection refused (3 tries)"


def test_size_limit_by_header_and_by_counting(server, downloader):
    big = png_bytes(size=(800, 600)) + b"\0" * 300_000
    declared = server.add("/big.png", big)
    assert failure(downloader, declared) == \
        f"download too large ({len(big):,} bytes; the limit is 200,000)"
    streamed = server.add("/stream.png", big, send_length=False)
    assert failure(downloader, streamed) == \
        "download too large (more than 200,000 bytes; the limit is 200,000)"


def test_redirects_are_followed(server, downloader):
    server.add("/real.png", PNG)
    url = server.add("/short", status=302, content_type=None,
                     headers={"Location": server.url("/real.png")})
    assert downloader.fetch(url).data == PNG


def test_many_urls_download_at_once_and_in_order(server, tmp_path):
    urls = [server.add(f"/n{i}.png", png_bytes(seed=i), delay=0.2) for i in range(8)]
    urls.append(server.url("/absent.png"))
    with Downloader(cache=tmp_path / "c", concurrency=4, retries=0) as d:
        results = list(d.fetch_many(urls))
    assert [u for u, _ in results] == urls
    assert [r.data for _, r in results[:8]] == [png_bytes(seed=i) for i in range(8)]
    assert isinstance(results[8][1], DownloadFailed) and "404" in results[8][1].reason
    assert 2 <= server.max_in_flight <= 4


def test_data_urls_are_decoded_without_network(downloader):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    fetched = downloader.fetch(url)
    assert fetched.data == PNG and not fetched.downloaded
    assert decode_data_url("data:,a%20b") == b"a b"
    assert failure(downloader, "data:text/plain,hello") == \
        "not an image (the data: URL holds text/plain, 5 bytes starting 'hello')"
    assert failure(downloader, "data:image/png;base64") == \
        "invalid data: URL (no comma before the data)"
    assert failure(downloader, "data:image/png;base64,!!!") == \
        "not an image (the data: URL holds image/png and no bytes)"  # non-base64 is dropped
    with pytest.raises(DownloadFailed, match="too large"):
        decode_data_url(url, max_bytes=100)


def test_only_http_https_and_data_urls_are_read(downloader):
    assert failure(downloader, "ftp://example.org/a.png") == \
        "unsupported URL scheme 'ftp' (only http, https and data URLs are read)"


def test_settings_are_checked(tmp_path):
    from lookalike import LookalikeError

    with pytest.raises(LookalikeError, match="Downloader concurrency must be positive, not 0"):
        Downloader(cache=tmp_path, concurrency=0)
    with pytest.raises(LookalikeError, match="cannot be negative"):
        Downloader(cache=tmp_path, retries=-1)


def test_url_helpers():
    assert is_url("https://x.org/a.png") and is_url("HTTP://x") and is_url("data:,x")
    assert not is_url("/photos/a.png") and not is_url("C:\\photos\\a.png")
    assert url_scheme("ftp://h/a") == "ftp" and url_scheme("C:\\a") is None
    assert url_scheme("photos/a:b.png") is None
    assert url_name("https://x.org/imgs/Bone%20X-ray.jpeg?size=2") == "Bone X-ray"
    assert url_name("https://x.org/") == "x.org"
    assert sniff(PNG) == "PNG" and sniff(b"GIF89a") is None and sniff(b"") is None
