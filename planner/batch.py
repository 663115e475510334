"""Plan many cases in parallel processes; one bad case does not stop the others."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from planner.errors import InputNotFoundError, PlannerError

#: Columns of ``summary.csv``, in order.
SUMMARY_COLUMNS = (
    "case",
    "verdict",
    "feasible",
    "reasons",
    "foramen_clearance_mm",
    "canal_clearance_mm",
    "anterior_cortex_clearance_mm",
    "angle_to_anterior_edge_deg",
    "skin_to_target_mm",
    "required_length_mm",
    "seconds",
    "error",
)


@dataclass(frozen=True)
class BatchSummary:
    csv_path: Path
    rows: list[dict]

    @property
    def exit_code(self) -> int:
        """0 all planned safe/caution, 3 any unsafe or infeasible, 2 any bad input, 1 any crash."""
        codes = {row["exit_code"] for row in self.rows}
        for code in (1, 2, 3):
            if code in codes:
                return code
        return 0


def list_cases(cases_dir: Path) -> list[Path]:
    """Entries of ``cases_dir`` that may be cases: sub-folders and image files, sorted by name."""
    if not cases_dir.is_dir():
        raise InputNotFoundError(f"cases folder {cases_dir} does not exist or is not a folder")
    entries = sorted(p for p in cases_dir.iterdir() if not p.name.startswith("."))
    if not entries:
        raise InputNotFoundError(f"cases folder {cases_dir} is empty")
    return entries


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan_one(case_path: Path, output_dir: Path, needle: str, config_path: Path | None) -> dict:
    """Plan one case in a worker process; every failure becomes a row, never an exception."""
    from planner.pipeline import CaseRequest, run_case

    start = time.perf_counter()
    row = {"case": _case_name(case_path), "error": "", "exit_code": 0}
    try:
        result = run_case(
            CaseRequest(case_path, output_dir, needle=needle, config_path=config_path)
        )
        metrics = result.plan.get("metrics", {})
        row.update({key: metrics.get(key) for key in SUMMARY_COLUMNS if key in metrics})
        row["required_length_mm"] = result.plan.get("needle", {}).get("required_length_mm")
        row["verdict"] = result.verdict
        row["feasible"] = result.plan.get("feasible", True)
        # One cell: a spreadsheet reader sees why a case is caution/unsafe without opening it.
        row["reasons"] = "; ".join(result.plan.get("reasons", []))
        row["exit_code"] = 3 if result.written_unsafe else 0
    except PlannerError as error:
        row.update(verdict="error", error=str(error), exit_code=2)
    except Exception as error:  # noqa: BLE001 - a crash in one case must not stop the batch
        row.update(
            verdict="error", error=f"internal error: {type(error).__name__}: {error}", exit_code=1
        )
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def run_batch(
    cases_dir: Path,
    output_dir: Path,
    workers: int = 2,
    needle: str = "13G",
    config_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Plan every case of ``cases_dir`` into ``output_dir/<case>/`` and write ``summary.csv``."""
    cases = list_cases(cases_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(case, output_dir / _case_name(case), needle, config_path) for case in cases]
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = [pool.submit(plan_one, *job) for job in jobs]
        for future in futures:
            row = future.result()
            rows.append(row)
            if progress is not None:
                progress(f"{row['case']}: {row['verdict']} ({row['seconds']} s) {row['error']}")
    csv_path = output_dir / "summary.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return BatchSummary(csv_path, rows)
