"""The whole anterior foramen channel: from its anterior mouth to the sacral canal.

:func:`planner.anatomy.foramina.find_foramina` finds each foramen by the part of its channel that
is enclosed by bone above, below and on both sides, in front of the canal. That part is enough
to place the foramen, but it is not the whole channel the nerve root runs in:

* the **medial limb**, where the channel turns from the lateral mass to the canal's lateral
  recess (behind the posterior surface of the bodies), is left out by the "in front of the canal"
  test; an interpedicular needle crossing the canal at S4 passes nearest to exactly this limb;
* the **anterior mouth**, where the channel opens on the oblique anterior surface of the lateral
  mass, has no bone on its lateral side and fails the enclosure test.

A channel found on the phantoms covered about half of the true channel: plans measured foramen
clearances up to 4 mm optimistic. :func:`grow_channels` grows each found channel through the
non-bone cells around it, inside the sacrum's envelope (the bone closed by a ball larger than the
channel, which bridges the mouth's opening), and outside the canal, in a box that spans from the
channel's mouth to the middle of the canal's depth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from planner.anatomy.straight import StraightSacrum

#: The ball that closes the bone into its envelope is this much larger than the channel's
#: radius (mm): it bridges the channel's mouth instead of entering it.
ENVELOPE_EXTRA_RADIUS_MM = 3.0
#: Margins of the growth box around the channel (mm): along the sacrum beyond the channel's
#: radius, in front of its anterior centre, and laterally beyond it.
S_MARGIN_MM = 2.0
FRONT_MARGIN_MM = 4.0
LATERAL_MARGIN_MM = 3.0
#: Longest growth path from the found channel (mm): the medial limb runs about 10-15 mm from the
#: lateral mass to the canal.
GROW_REACH_MM = 20.0
#: How far inside the canal's measured half-width a channel may reach (mm): the lateral recess
#: is rounded, so the wall there lies a little medial of the widest point.
MEDIAL_TOLERANCE_MM = 4.0
#: No channel within this distance of the mid-sagittal plane (mm): the middle of the canal.
MIN_MEDIAL_MM = 5.0


def _canal_mid_depth(canal: np.ndarray, d_mm: np.ndarray, rows: slice) -> float | None:
    """Mean depth (mm) of the canal cells in a range of stations, or None without canal."""
    cells = canal[rows]
    if not cells.any():
        return None
    d_index = np.nonzero(cells)[1]
    return float(0.5 * (d_mm[d_index.min()] + d_mm[d_index.max()]))


def _envelope(bone: np.ndarray, radius_cells: float) -> np.ndarray:
    """Bone closed by a ball of ``radius_cells`` (EDT dilation then erosion)."""
    near_bone = ndimage.distance_transform_edt(~bone) <= radius_cells
    return bone | (ndimage.distance_transform_edt(near_bone) > radius_cells)


def grow_channels(
    straight: StraightSacrum,
    labels: np.ndarray,
    channels: list[tuple[int, tuple[float, float, float], float]],
    canal: np.ndarray,
    canal_half_width_mm: np.ndarray | None = None,
) -> np.ndarray:
    """Labels with each found channel grown to its mouth and to the canal.

    Parameters
    ----------
    straight : StraightSacrum
    labels : (n_s, n_d, n_x) int ndarray
        Component labels of the found channels (other components may be present).
    channels : list of (component, (x, s, d), radius)
        The found channels: component label, anterior centre (mm), radius (mm).
    canal : (n_s, n_d, n_x) bool ndarray
        The canal on the straightened grid; the grown channels stay out of it.
    canal_half_width_mm : (n_s,) ndarray, optional
        The canal's half-width per station (NaN where unknown): the channels grow no closer to
        the midline than that, less :data:`MEDIAL_TOLERANCE_MM` (where the canal mask is
        narrower than the canal, the space beside it is canal, not a channel).

    Returns
    -------
    ndarray
        A copy of ``labels`` where the grown cells carry their channel's component label.
    """
    step = straight.step_mm
    s_mm, d_mm, x_mm = straight.s_mm, straight.d_mm, straight.x_mm
    grown = labels.copy()
    found_components = [component for component, _, _ in channels]
    outside_canal = ~canal
    medial_limit = np.full(len(s_mm), MIN_MEDIAL_MM)
    if canal_half_width_mm is not None:
        known = np.isfinite(canal_half_width_mm)
        medial_limit[known] = np.maximum(
            MIN_MEDIAL_MM, canal_half_width_mm[known] - MEDIAL_TOLERANCE_MM
        )
    for component, (x_c, s_c, d_c), radius in channels:
        envelope_cells = (radius + ENVELOPE_EXTRA_RADIUS_MM) / step
        pad = radius + ENVELOPE_EXTRA_RADIUS_MM + step
        s_half = radius + S_MARGIN_MM
        rows = (s_mm >= s_c - s_half) & (s_mm <= s_c + s_half)
        canal_rows = slice(*np.flatnonzero(rows)[[0, -1]] + [0, 1]) if rows.any() else None
        if canal_rows is None:
            continue
        d_high = _canal_mid_depth(canal, d_mm, canal_rows)
        if d_high is None:
            continue
        d_high += radius  # the limb ends in the canal's lateral recess, radius and all
        sign = 1.0 if x_c > 0 else -1.0
        x_far = abs(x_c) + radius + LATERAL_MARGIN_MM
        d_low = d_c - radius - FRONT_MARGIN_MM
        # Box with a margin for the closing; the growth is limited to the inner box.
        box = tuple(
            slice(int(np.searchsorted(axis, low - pad)), int(np.searchsorted(axis, high + pad)))
            for axis, low, high in (
                (s_mm, s_c - s_half, s_c + s_half),
                (d_mm, d_low, d_high),
                (x_mm, min(0.0, sign * x_far), max(0.0, sign * x_far)),
            )
        )
        bone = straight.bone[box]
        s_in = (s_mm[box[0]] >= s_c - s_half) & (s_mm[box[0]] <= s_c + s_half)
        d_in = (d_mm[box[1]] >= d_low) & (d_mm[box[1]] <= d_high)
        x_in = (sign * x_mm[box[2]] >= 0.0) & (sign * x_mm[box[2]] <= x_far)
        inner = s_in[:, None, None] & d_in[None, :, None] & x_in[None, None, :]
        inner &= np.abs(x_mm[box[2]])[None, None, :] >= medial_limit[box[0]][:, None, None]
        allowed = inner & ~bone & _envelope(bone, envelope_cells) & outside_canal[box]
        others = [c for c in found_components if c != component]
        allowed &= ~np.isin(grown[box], others)  # never into another found channel
        seed = (labels[box] == component) & allowed
        if not seed.any():
            continue
        iterations = max(1, int(round(GROW_REACH_MM / step)))
        region = ndimage.binary_dilation(seed, iterations=iterations, mask=allowed)
        region |= _entry_zone(region, canal[box], [axis[b] for axis, b in zip(
            (s_mm, d_mm, x_mm), box, strict=True)], radius)
        grown[box][region] = component
    return grown


def _entry_zone(channel: np.ndarray, canal: np.ndarray, axes_mm: list[np.ndarray],
                radius_mm: float) -> np.ndarray:
    """Canal cells within the channel's radius of where the channel meets the canal.

    The nerve root enters its channel from the canal's lateral recess: the channel continues
    into the canal as a round opening of its own radius. The exact phantom foramen (capsules
    around the channel's axis, cut where the axis enters the canal) counts that ball as foramen
    too. Centre: the mean position of the channel cells that touch the canal.
    """
    contact = channel & ndimage.binary_dilation(canal)
    if not contact.any():
        return np.zeros_like(channel)
    cells = np.nonzero(contact)
    centre = [float(axis[index].mean()) for axis, index in zip(axes_mm, cells, strict=True)]
    squared = sum(
        ((axis - c) ** 2).reshape([-1 if a == n else 1 for a in range(3)])
        for n, (axis, c) in enumerate(zip(axes_mm, centre, strict=True))
    )
    return canal & (squared <= radius_mm**2)
