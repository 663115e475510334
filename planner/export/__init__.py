"""Writing a plan to disk: plan.json, 3D Slicer markups, NIfTI masks, and the output folder."""
