"""A synthetic pelvis with known anatomy, for tests and measurements.

The anatomy is analytic (implicit shapes in LPS mm), evaluated at the voxel centres of any grid,
so every orientation and spacing shows the same anatomy with no resampling, and the landmarks
are exact::

    from planner.phantom import PhantomParams, make_phantom, write_dicom_series
    phantom = make_phantom(PhantomParams.random(seed=3), spacing_mm=2.0, orientation="oblique")
    phantom.volume                      # Volume, CT in HU (int16)
    phantom.truth.sacrum                # Volume (bool) on the same grid
    phantom.truth.hiatus_apex_lps       # (3,) LPS mm
    anatomy = phantom.truth.to_anatomy()  # exact SacralAnatomy for the planner

``PhantomParams.random(seed, kyphotic=True)`` draws a strongly curved sacrum (little room below
S3, still a path); ``PhantomParams.random(seed, infeasible=True)`` a hooked one with no
interpedicular path at all (``truth.built_infeasible``, checked exactly by
``truth.interpedicular_feasibility()``).
"""

from planner.phantom.build import Phantom, field_of_view_lps, make_phantom
from planner.phantom.fatty import fatty_marrow_phantom
from planner.phantom.grid import direction_for
from planner.phantom.io import write_dicom_series, write_nifti
from planner.phantom.params import (
    CONTRASTS,
    FIELDS_OF_VIEW,
    INFEASIBLE_HOOK_DEG,
    KYPHOTIC_RANGE_DEG,
    MR_CONTRASTS,
    ORIENTATIONS,
    RANGES,
    PhantomParams,
)
from planner.phantom.truth import Feasibility, Landmarks, PhantomTruth, TangentCorridor

__all__ = [
    "CONTRASTS",
    "FIELDS_OF_VIEW",
    "INFEASIBLE_HOOK_DEG",
    "KYPHOTIC_RANGE_DEG",
    "MR_CONTRASTS",
    "ORIENTATIONS",
    "RANGES",
    "Feasibility",
    "Landmarks",
    "Phantom",
    "PhantomParams",
    "PhantomTruth",
    "TangentCorridor",
    "direction_for",
    "fatty_marrow_phantom",
    "field_of_view_lps",
    "make_phantom",
    "write_dicom_series",
    "write_nifti",
]
