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
#: The colour check (both images coloured): a*, b* kept at this side; a picture is grey when
#: fewer than COLOURED_SHARE of its pixels have a chroma of GREY_CHROMA or more.
CHROMA_SIZE = 128
COLOURED_SHARE = 0.01
GREY_CHROMA = 8.0
#: A block has colour when its mean chroma (in either image) is BLOCK_CHROMA or more; it is
#: recoloured when its mean a*, b* differ by more than COLOUR_TOLERANCE after a global shift
#: of at most MAX_COLOUR_SHIFT; a copy may have MAX_RECOLOURED_BLOCKS of its coloured blocks
#: recoloured at most.
BLOCK_CHROMA = 6.0
COLOUR_TOLERANCE = 15.0
MAX_COLOUR_SHIFT = 6.0
MAX_RECOLOURED_BLOCKS = 0.09
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
    chroma: np.ndarray | None = None  # float32 (CHROMA_SIZE, CHROMA_SIZE, 2): a*, b*; None: grey


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
    rgb = np.ascontiguousarray(decoded.pixels)
    grey8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    points, descriptors = [], []
    for image in (grey8, np.ascontiguousarray(grey8[:, ::-1])):
        kps, des = _orb()[0].detectAndCompute(image, None)
        points.append(np.array([k.pt for k in kps], np.float32).reshape(-1, 2))
        descriptors.append(des)
    return CopyFeatures(grey8.astype(np.float32), min(decoded.width, decoded.height),
                        (points[0], points[1]),
                        (descriptors[0], descriptors[1]), _chroma(rgb))


def _chroma(rgb: np.ndarray) -> np.ndarray | None:
    """The picture's a* and b* (CIE Lab) at CHROMA_SIZE, or None for a grey picture (its
    chroma spread, the COLOURED_SHARE-th most saturated pixels' chroma, under GREY_CHROMA)."""
    small = cv2.resize(rgb, (CHROMA_SIZE, CHROMA_SIZE), interpolation=cv2.INTER_AREA)
    ab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[:, :, 1:]
    spread = float(np.quantile(np.hypot(ab[:, :, 0], ab[:, :, 1]), 1.0 - COLOURED_SHARE))
    return np.ascontiguousarray(ab) if spread >= GREY_CHROMA else None


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
            verdict = _verify(a, b, m, name, size)
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


def _verify(a: CopyFeatures, b: CopyFeatures, matrix: np.ndarray, how: str,
            compare_size: int) -> CopyVerdict:
    contained, b_smaller = _contained(matrix)
    if contained < MIN_CONTAINED:
        return CopyVerdict(False, 0.0, f"aligned ({how}) but only {contained:.0%} of one image "
                                       "lies inside the other: overlapping shots, not a copy")
    # compare in the smaller image's frame, so that a crop is compared over all of itself
    if b_smaller:
        fixed, moving, m = b, a, cv2.invertAffineTransform(matrix)
    else:
        fixed, moving, m = a, b, matrix
    f, w, v = _aligned(fixed.grey, moving.grey, m, compare_size)
    differing, counted = _differing_blocks(f, w, v)
    if counted == 0:
        return CopyVerdict(False, 0.0, f"aligned ({how}) but nothing overlaps")
    score = 1.0 - differing / counted
    is_copy = differing <= MAX_DIFFERING_BLOCKS * counted
    if is_copy and fixed.chroma is not None and moving.chroma is not None:
        recoloured, coloured = _recoloured_blocks(fixed.chroma, moving.chroma, m, compare_size)
        if recoloured > MAX_RECOLOURED_BLOCKS * max(coloured, 1):
            return CopyVerdict(False, score, f"not a copy: aligned ({how}), {counted - differing}"
                                             f" of {counted} blocks agree in grey but "
                                             f"{recoloured} of {coloured} differ in colour")
    word = "a copy" if is_copy else "not a copy"
    return CopyVerdict(is_copy, score, f"{word}: aligned ({how}), {counted - differing} of "
                                       f"{counted} blocks agree")


def _aligned(fixed: np.ndarray, moving: np.ndarray, m: np.ndarray,
             compare_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fixed and moving warped onto it by `m` (both at the side of `fixed`), at compare_size,
    and the mask of the pixels that moving covers."""
    size = fixed.shape[1], fixed.shape[0]
    warped = cv2.warpAffine(moving, m, size, flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.ones(moving.shape[:2], np.float32), m, size,
                           flags=cv2.INTER_NEAREST)
    small = (compare_size, compare_size)
    return (cv2.resize(fixed, small, interpolation=cv2.INTER_AREA),
            cv2.resize(warped, small, interpolation=cv2.INTER_AREA),
            cv2.resize(valid, small, interpolation=cv2.INTER_AREA) > 0.99)


def _block_means(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block of BLOCK x BLOCK pixels: the mean of `values` (H, W[, C]) over the valid
    pixels, and whether the block counts (at least half of it valid)."""
    grid, step = len(valid) // BLOCK, BLOCK
    v = valid.reshape(grid, step, grid, step).astype(np.float32)
    x = values.reshape(grid, step, grid, step, -1) * v[..., None]
    n = v.sum(axis=(1, 3))
    means = x.sum(axis=(1, 3)) / np.maximum(n, 1)[..., None]
    return means.reshape(grid * grid, -1), (n >= step * step / 2).ravel()


def _recoloured_blocks(fixed: np.ndarray, moving: np.ndarray, m: np.ndarray,
                       compare_size: int) -> tuple[int, int]:
    """How many of the aligned blocks that have colour (in either image) differ in it, and
    how many have colour."""
    residual = _colour_residuals(*_block_colours(fixed, moving, m, compare_size))
    return int((residual > COLOUR_TOLERANCE).sum()), len(residual)


def _block_colours(fixed: np.ndarray, moving: np.ndarray, m: np.ndarray,
                   compare_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean a*, b* (n, 2) of each aligned block with colour in either image: fixed's,
    moving's."""
    r = CHROMA_SIZE / FEATURE_SIZE
    scale = np.array([[r, 0, 0.5 * r - 0.5], [0, r, 0.5 * r - 0.5]])
    m_small = _compose(scale, _compose(m, cv2.invertAffineTransform(scale)))
    f, w, v = _aligned(fixed, moving, m_small.astype(np.float32), min(compare_size, CHROMA_SIZE))
    cf, counted = _block_means(f, v)
    cw, _ = _block_means(w, v)
    cf, cw = cf[counted], cw[counted]
    coloured = np.maximum(np.hypot(*cf.T), np.hypot(*cw.T)) >= BLOCK_CHROMA
    return cf[coloured], cw[coloured]


def _colour_residuals(cf: np.ndarray, cw: np.ndarray) -> np.ndarray:
    """How far each block's colours lie apart once moving's are corrected by one global
    shift (a white balance) of at most MAX_COLOUR_SHIFT."""
    if not len(cf):
        return np.zeros(0, np.float32)
    shift = np.median(cf - cw, axis=0)
    norm = float(np.hypot(*shift))
    if norm > MAX_COLOUR_SHIFT:
        shift *= MAX_COLOUR_SHIFT / norm
    return np.hypot(*(cf - cw - shift).T)


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
