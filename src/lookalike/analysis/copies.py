"""Is one image a copy of another? `same_pixels` (identical decoded pixels, any format) and
`copy_check`, the strict check on a candidate pair that tells an edited copy (resized,
re-encoded, cropped, slightly rotated, brightened, mirrored, watermarked) from a different
image that merely looks alike. Pure functions of the bytes; benchmarks/duplicates.py measures them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..ingest.decode import ImageSkipped, decode

__all__ = ["CopyFeatures", "CopyVerdict", "ImageSkipped", "compare", "copy_check",
           "copy_features", "same_pixels"]

#: Side of the square (squash-resized, upright) grey image that features are found in.
FEATURE_SIZE = 256
#: Aligned images are compared as blocks of 8 x 8 pixels at 128 x 128 (16 x 16 blocks), or
#: at 64 x 64 when either image has fewer than 128 pixels a side (a thumbnail has no more
#: detail). Alignments from features are refined densely first, then compared as finely: at
#: 64 px a form's other text was too small to count (two pages passed as copies).
BLOCK = 8
COMPARE_SIZES = (128, 64)
#: A block agrees when its mean absolute difference of standardised grey levels is at most
#: this (benchmarks/duplicates.py: copies' blocks stay under it, a different image's exceed it).
BLOCK_TOLERANCE = 0.45
#: A copy may differ in this share of its blocks at most (a watermark, a logo), no more: a
#: pasted object covering 16% of the picture, or a form's other text, is more.
MAX_DIFFERING_BLOCKS = 0.09
#: One image must lie (almost) wholly inside the other: a crop is a copy, two overlapping
#: shots of one scene (a window moved by 30% or more) are not.
MIN_CONTAINED = 0.8
#: RANSAC inliers needed to trust an alignment from ORB features.
MIN_INLIERS = 12
#: Dense refinement (ECC, affine) of an alignment, coarse to fine at these sides (up to the
#: comparison's): its iterations at most per side; the correlation the coarse fit needs to go
#: on (benchmarks/duplicates.py: copies 0.79 or more but for 1 in 100, half the other
#: candidates under 0.13); how far (a share of the side) it may move a corner.
ECC_SIZES = (64, 128)
ECC_ITERATIONS = 50
ECC_MIN_CORRELATION = 0.5
MAX_REFINE_SHIFT = 0.25
#: OpenCV's detector and matcher keep state between calls (the matcher its train set): one
#: of each per thread, so that pairs are checked in several threads at once.
_LOCAL = threading.local()


def _orb() -> tuple[cv2.ORB, cv2.BFMatcher]:
    if not hasattr(_LOCAL, "orb"):
        _LOCAL.orb = cv2.ORB.create(nfeatures=500, fastThreshold=10)
        _LOCAL.matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    return _LOCAL.orb, _LOCAL.matcher


@dataclass(frozen=True)
class CopyVerdict:
    """`is_copy`; `score` in 0..1 (the share of aligned blocks that agree; 0 when the images
    cannot be aligned); `reason`, one line for people."""

    is_copy: bool
    score: float
    reason: str


@dataclass(frozen=True)
class CopyFeatures:
    """What `compare` needs of one image, computed once per image when many pairs are checked."""

    grey: np.ndarray  # float32 (FEATURE_SIZE, FEATURE_SIZE), upright, squash-resized
    detail: int  # the shorter side of the image itself, in pixels
    points: tuple[np.ndarray, np.ndarray]  # ORB key points (N, 2): as is, mirrored left-right
    descriptors: tuple[np.ndarray | None, np.ndarray | None]


def same_pixels(a: bytes, b: bytes) -> bool:
    """Whether two encoded images decode to the same upright RGB pixels (lookalike's own
    decoding: EXIF orientation applied, alpha on white). Bad bytes raise ImageSkipped."""
    pa, pb = decode(a).pixels, decode(b).pixels
    return pa.shape == pb.shape and bool(np.array_equal(pa, pb))


def copy_check(a: bytes, b: bytes) -> CopyVerdict:
    """The strict check of one pair of encoded images (bad bytes raise ImageSkipped)."""
    return compare(copy_features(a), copy_features(b))


def copy_features(data: bytes) -> CopyFeatures:
    """Decode once (upright, alpha on white, squash-resized) and find ORB features, as is and
    mirrored (ORB's descriptors are not mirror-invariant)."""
    decoded = decode(data, FEATURE_SIZE, resample=Image.Resampling.BOX)
    rgb = decoded.pixels
    grey8 = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    points, descriptors = [], []
    for image in (grey8, np.ascontiguousarray(grey8[:, ::-1])):
        kps, des = _orb()[0].detectAndCompute(image, None)
        points.append(np.array([k.pt for k in kps], np.float32).reshape(-1, 2))
        descriptors.append(des)
    return CopyFeatures(grey8.astype(np.float32), min(decoded.width, decoded.height),
                        (points[0], points[1]),
                        (descriptors[0], descriptors[1]))


def compare(a: CopyFeatures, b: CopyFeatures) -> CopyVerdict:
    """The verdict on a pair: align b to a (as is, mirrored, or by ORB features and RANSAC),
    refine the alignment densely (ECC) where that alone does not show a copy, require one
    image inside the other, then compare the aligned pixels block by block."""
    best = CopyVerdict(False, 0.0, "no alignment found: the images share no structure")
    detail = min(a.detail, b.detail)
    size = next((s for s in COMPARE_SIZES if detail >= s), COMPARE_SIZES[-1])
    for how, matrix in _alignments(a, b):
        # a feature alignment is a pixel or so off at 256: always refined before it is judged
        for name, m in _tries(a, b, how, matrix, size):
            verdict = _verify(a.grey, b.grey, m, name, size)
            if verdict.is_copy:
                return verdict
            if verdict.score > best.score or not best.score:
                best = verdict
    return best


def _tries(a: CopyFeatures, b: CopyFeatures, how: str, matrix: np.ndarray, size: int):
    """The alignment as found (not for features), then refined (when that converges)."""
    if not how.startswith("features"):
        yield how, matrix
    refined = _refine(a.grey, b.grey, matrix, size)
    if refined is not None:
        yield f"{how}, refined", refined


def _mirror() -> np.ndarray:
    return np.array([[-1, 0, FEATURE_SIZE - 1], [0, 1, 0]], np.float32)


def _alignments(a: CopyFeatures, b: CopyFeatures):
    """(name, 2x3 matrix taking b's coordinates to a's): the cheap guesses first."""
    exact = (np.array([[1, 0, 0], [0, 1, 0]], np.float32), _mirror())
    yield "as is", exact[0]
    yield "mirrored", exact[1]
    for side, name in ((0, "features"), (1, "features, mirrored")):
        found = _feature_alignment(a, b, side)
        # one of the exact guesses, found again: already judged, and more finely
        if found is not None and not any(_same_alignment(found[0], m) for m in exact):
            matrix, inliers = found
            yield f"{name}, {inliers} inliers", matrix


def _same_alignment(m1: np.ndarray, m2: np.ndarray, pixels: float = 2.0) -> bool:
    s = FEATURE_SIZE - 1
    corners = np.array([[[0, 0], [s, 0], [s, s], [0, s]]], np.float32)
    return bool(np.abs(cv2.transform(corners, m1) - cv2.transform(corners, m2)).max() <= pixels)


def _feature_alignment(a: CopyFeatures, b: CopyFeatures, side: int):
    da, db = a.descriptors[0], b.descriptors[side]
    if da is None or db is None or len(da) < MIN_INLIERS or len(db) < MIN_INLIERS:
        return None
    matches = _orb()[1].match(db, da)
    if len(matches) < MIN_INLIERS:
        return None
    src = np.array([b.points[side][m.queryIdx] for m in matches], np.float32)
    dst = np.array([a.points[0][m.trainIdx] for m in matches], np.float32)
    matrix, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0,
                                        maxIters=2000, confidence=0.99, refineIters=10)
    inliers = int(mask.sum()) if mask is not None else 0
    if matrix is None or inliers < MIN_INLIERS:
        return None
    if side:  # the points were found in b mirrored: mirror b first
        matrix = _compose(matrix, _mirror())
    return matrix.astype(np.float32), inliers


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    full = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return full[:2]


def _refine(grey_a: np.ndarray, grey_b: np.ndarray, matrix: np.ndarray,
            size: int) -> np.ndarray | None:
    """The alignment `matrix` (b to a) refined by ECC (dense, affine; brightness and contrast
    do not count), the contained image as the template: coarse to fine, at ECC_SIZES up to
    `size` pixels a side. None when it does not converge, when the coarse fit correlates less
    than ECC_MIN_CORRELATION (no copy: not worth the fine step), or when it wanders off
    (a corner moved by more than MAX_REFINE_SHIFT of the side)."""
    _, b_smaller = _contained(matrix)
    fixed, moving = (grey_b, grey_a) if b_smaller else (grey_a, grey_b)
    m = matrix if b_smaller else cv2.invertAffineTransform(matrix)  # fixed to moving
    warp = m.astype(np.float64)
    for step in (s for s in ECC_SIZES if s <= size):
        r = step / FEATURE_SIZE
        scale = np.array([[r, 0, 0.5 * r - 0.5], [0, r, 0.5 * r - 0.5]])
        unscale = cv2.invertAffineTransform(scale)
        # ECC's warp takes the template's (fixed) coordinates to the input's (moving)
        start = _compose(scale, _compose(warp, unscale)).astype(np.float32)
        f = cv2.resize(fixed, (step, step), interpolation=cv2.INTER_AREA)
        mv = cv2.resize(moving, (step, step), interpolation=cv2.INTER_AREA)
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ECC_ITERATIONS, 1e-4)
        try:
            cc, fitted = cv2.findTransformECC(f, mv, start, cv2.MOTION_AFFINE, criteria, None)
        except cv2.error:
            return None
        if cc < ECC_MIN_CORRELATION:
            return None
        warp = _compose(unscale, _compose(np.asarray(fitted, np.float64), scale))
    if not _same_alignment(warp.astype(np.float32), m.astype(np.float32),
                           MAX_REFINE_SHIFT * FEATURE_SIZE):
        return None
    out = warp if b_smaller else cv2.invertAffineTransform(warp)
    return np.asarray(out, np.float32)


def _contained(matrix: np.ndarray) -> tuple[float, bool]:
    """How much of the smaller image lies inside the other, and whether that is b (else a)."""
    s = FEATURE_SIZE - 1
    square = np.array([[0, 0], [s, 0], [s, s], [0, s]], np.float32)
    quad = cv2.transform(square[None], matrix)[0]
    quad_area = abs(cv2.contourArea(quad))
    if quad_area < 1.0:
        return 0.0, True
    overlap, _ = cv2.intersectConvexConvex(square, quad)
    b_inside = overlap / quad_area
    a_inside = overlap / (s * s)
    return (b_inside, True) if b_inside >= a_inside else (a_inside, False)


def _verify(grey_a: np.ndarray, grey_b: np.ndarray, matrix: np.ndarray, how: str,
            compare_size: int) -> CopyVerdict:
    contained, b_smaller = _contained(matrix)
    if contained < MIN_CONTAINED:
        return CopyVerdict(False, 0.0, f"aligned ({how}) but only {contained:.0%} of one image "
                                       "lies inside the other: overlapping shots, not a copy")
    # compare in the smaller image's frame, so that a crop is compared over all of itself
    if b_smaller:
        fixed, moving, m = grey_b, grey_a, cv2.invertAffineTransform(matrix)
    else:
        fixed, moving, m = grey_a, grey_b, matrix
    size = (FEATURE_SIZE, FEATURE_SIZE)
    warped = cv2.warpAffine(moving, m, size, flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.ones_like(moving), m, size, flags=cv2.INTER_NEAREST)
    small = (compare_size, compare_size)
    f = cv2.resize(fixed, small, interpolation=cv2.INTER_AREA)
    w = cv2.resize(warped, small, interpolation=cv2.INTER_AREA)
    v = cv2.resize(valid, small, interpolation=cv2.INTER_AREA) > 0.99
    differing, counted = _differing_blocks(f, w, v)
    if counted == 0:
        return CopyVerdict(False, 0.0, f"aligned ({how}) but nothing overlaps")
    score = 1.0 - differing / counted
    is_copy = differing <= MAX_DIFFERING_BLOCKS * counted
    word = "a copy" if is_copy else "not a copy"
    return CopyVerdict(is_copy, score, f"{word}: aligned ({how}), {counted - differing} of "
                                       f"{counted} blocks agree")


def _standardised(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Grey levels as z-scores over the valid pixels: brightness, contrast and greyscale do
    not count, only the picture's structure."""
    sample = values[valid]
    return (values - sample.mean()) / max(float(sample.std()), 2.0)


def _differing_blocks(f: np.ndarray, w: np.ndarray, valid: np.ndarray) -> tuple[int, int]:
    if valid.sum() < valid.size / 4:
        return 0, 0
    diff = np.abs(_standardised(f, valid) - _standardised(w, valid)) * valid
    grid, step = len(f) // BLOCK, BLOCK
    block_diff = diff.reshape(grid, step, grid, step).sum(axis=(1, 3))
    block_valid = valid.reshape(grid, step, grid, step).sum(axis=(1, 3))
    counted = block_valid >= step * step / 2
    mean_diff = block_diff[counted] / block_valid[counted]
    return int((mean_diff > BLOCK_TOLERANCE).sum()), int(counted.sum())
