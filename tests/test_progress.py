"""Progress outside a terminal: plain lines now and then, never carriage returns or escapes."""

import io

from lookalike.progress import PlainProgress, progress_bar


class Clock:
    """Seconds counted in whole milliseconds, so that no rounding moves a line."""

    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms / 1000


def test_a_line_for_each_tenth_at_most_every_two_seconds_and_one_at_the_end():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(1000, "embedding", out, clock=clock)
    for _ in range(1000):
        clock.ms += 10                        # 100 images/s: a tenth takes one second
        bar.update()
    bar.close()
    bar.close()                               # closing twice prints nothing more
    lines = out.getvalue().splitlines()
    assert lines == ["embedding: 200/1,000 images (20%), 100 images/s",
                     "embedding: 400/1,000 images (40%), 100 images/s",
                     "embedding: 600/1,000 images (60%), 100 images/s",
                     "embedding: 800/1,000 images (80%), 100 images/s",
                     "embedding: 1,000/1,000 images (100%), 100 images/s"]


def test_a_slow_job_still_says_something_every_thirty_seconds():
    out, clock = io.StringIO(), Clock()
    with PlainProgress(10_000, "downloading", out, clock=clock) as bar:
        for _ in range(100):
            clock.ms += 1000
            bar.update()
    assert out.getvalue().splitlines() == [
        "downloading: 30/10,000 images (0%), 1 images/s",
        "downloading: 60/10,000 images (0%), 1 images/s",
        "downloading: 90/10,000 images (0%), 1 images/s",
        "downloading: 100/10,000 images (1%), 1 images/s"]


def test_outside_a_terminal_the_bar_is_plain_and_disabled_it_is_silent(capsys):
    # pytest's captured stderr is not a terminal, as in a CI job or `2> log`.
    with progress_bar(3, True, "writing") as bar:
        for _ in range(3):
            bar.update()
    with progress_bar(3, False, "writing") as bar:
        bar.update(3)
    err = capsys.readouterr().err
    assert err.startswith("writing: 3/3 images (100%)") and err.count("\n") == 1
    assert "\r" not in err and "\x1b" not in err
