"""Average an image stack after correcting the drift between its frames.

Scan drift moves the specimen between the frames of a STEM series; averaging them unaligned
blurs every column. Each frame is registered to the one before by phase correlation
(``skimage.registration.phase_cross_correlation``, sub-pixel by upsampling the cross-power
spectrum), shifted back by linear interpolation, and the frames are averaged over the region
every shifted frame covers (the border some frame left empty is cropped, never filled in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AlignedStack", "drift_corrected_mean"]

#: Sub-pixel precision of the registration: 1/UPSAMPLE px (a tenth of a pixel is well below
#: the position error of a column at the doses the benchmark uses).
UPSAMPLE = 10


@dataclass(frozen=True)
class AlignedStack:
    """The average of a drift-corrected stack.

    Attributes
    ----------
    mean : ndarray, shape (H', W'), float32
        Mean of the aligned frames over the region all of them cover.
    shifts_px : ndarray, shape (n_frames, 2)
            (dy, dx) in px applied to each frame to register it to frame 0 (frame 0: (0, 0)),
        summed from frame-to-frame registrations.
    crop : tuple of int
        (top, bottom, left, right) px removed from the frame edges.
    """

    mean: np.ndarray
    shifts_px: np.ndarray
    crop: tuple[int, int, int, int]


def drift_corrected_mean(stack: np.ndarray) -> AlignedStack:
    """Register every frame of ``stack`` to its first one and average them.

    Parameters
    ----------
    stack : array_like, shape (n_frames, H, W)
        Real-valued frames, frames first.

    Returns
    -------
    AlignedStack
        The mean over the common region and the shift of every frame in px.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> frame = np.cos(2 * np.pi * xx / 9.0) * np.cos(2 * np.pi * yy / 7.0)
    >>> stack = np.stack([frame, np.roll(frame, (2, -3), axis=(0, 1))])
    >>> out = drift_corrected_mean(stack)
    >>> np.round(out.shifts_px, 1).tolist()
    [[0.0, 0.0], [-2.0, 3.0]]
    >>> out.mean.shape
    (62, 61)
    """
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    frames = np.asarray(stack, dtype=np.float64)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise ValueError(f"expected a stack of shape (n_frames, H, W), got {frames.shape}")
    reference = frames[0]
    steps = np.zeros((frames.shape[0], 2))
    # Each frame against the one before: a crystal looks the same after a shift of one
    # lattice period, so only drifts under half a period are unambiguous; between consecutive
    # frames the drift is smallest. One registration (whole-frame FFTs) per frame.
    for i in range(1, frames.shape[0]):
        steps[i], _, _ = phase_cross_correlation(
            frames[i - 1], frames[i], upsample_factor=UPSAMPLE, normalization=None
        )
    shifts = np.cumsum(steps, axis=0)
    total = reference.copy()
    for i in range(1, frames.shape[0]):
        total += ndimage.shift(frames[i], shifts[i], order=1, mode="constant", cval=0.0)
    mean = total / frames.shape[0]
    h, w = reference.shape
    top = math.ceil(max(0.0, shifts[:, 0].max()))
    bottom = math.ceil(max(0.0, -shifts[:, 0].min()))
    left = math.ceil(max(0.0, shifts[:, 1].max()))
    right = math.ceil(max(0.0, -shifts[:, 1].min()))
    cropped = mean[top : h - bottom, left : w - right]
    return AlignedStack(
        mean=np.ascontiguousarray(cropped, dtype=np.float32),
        shifts_px=shifts,
        crop=(top, bottom, left, right),
    )
