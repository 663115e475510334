"""Patient identifiers, read only when the user asks for them (``--show-identifiers``).

Nothing else in the planner reads these DICOM attributes, so by default no output or log can
carry them; a case is named by ``VolumeInfo.case_id``, a short hash of its StudyInstanceUID.
"""

from __future__ import annotations

from pathlib import Path

#: The identifying attributes shown on request, and only then.
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                        "InstitutionName", "StudyDate")


def read_identifiers(path: str | Path, series_uid: str = "") -> dict[str, str]:
    """Identifying attributes of the first DICOM file of a series under ``path``.

    Returns an empty dict for non-DICOM inputs (NIfTI, NRRD, MHA carry no identifiers).
    """
    from planner.dicom import iter_files, read_header

    path = Path(path)
    files = [path] if path.is_file() else iter_files(path)
    for file in files:
        dataset = read_header(file)
        if dataset is None:
            continue
        if series_uid and str(dataset.get("SeriesInstanceUID", "")) != series_uid:
            continue
        return {key: str(dataset.get(key, "")) for key in IDENTIFYING_KEYWORDS
                if str(dataset.get(key, ""))}
    return {}
