"""Plan the bundled sample case with the Python API and write every output.

Run from the project root: ``python examples/plan_sample.py [OUTDIR]``.
"""

import sys

import planner
from planner.sample import sample_case_path

output_dir = sys.argv[1] if len(sys.argv) > 1 else "sacroplan-example"

volume = planner.load(sample_case_path())  # DICOM folder -> Volume in LPS mm
anatomy = planner.find_anatomy(volume)  # sacrum, canal, foramina, levels, landmarks
result = planner.plan(volume, anatomy)  # needle path, metrics, verdict, alternatives

print(f"verdict: {result.verdict.value}")
for reason in result.reasons:
    print(f"  - {reason}")
print(f"target (LPS mm): {[round(float(v), 1) for v in result.target_lps]}")
depth_mm = result.metrics.skin_to_target_mm
print("skin to target: " + ("unknown" if depth_mm is None else f"{depth_mm:.1f} mm"))
print(f"needle: {result.needle.gauge} G, pick {result.standard_length_mm} mm")
result.save(output_dir, volume=volume, anatomy=anatomy)
print(f"written to {output_dir}/ (plan.json, report.pdf, images/, trajectory.mrk.json)")
