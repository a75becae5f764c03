"""The drift gate for machines: a JSON table and verdict, and JUnit XML that CI systems show as test results.

``edgeser build --json FILE --junit FILE`` and ``edgeser drift BUNDLE ... --json FILE --junit FILE`` write
them, also (above all) when the gate fails. JUnit: one test case per variant, dimension and condition, in
one test suite; a failing condition is a ``<failure>`` whose message carries the numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .drift import CONDITIONS, DriftResult, check
from .errors import OutputError
from .fileio import replacing

__all__ = ["drift_json", "junit_xml", "write_machine_reports"]


def drift_json(drift: DriftResult, *, target: str, shipped: str) -> dict[str, Any]:
    """The drift table and verdict as plain JSON (the verdict is the shipped variant's)."""
    budget = drift.to_dict()["budget"]
    rows = []
    for r in drift.rows:
        conditions = {name: dict(zip(("passed", "message"), check(r, name, drift.budget), strict=True))
                      for name in CONDITIONS}
        rows.append({"variant": r.variant, "dimension": r.dimension, "shipped": r.variant == shipped,
                     "ccc_float_teacher": r.ccc_float_teacher, "ccc_quant_teacher": r.ccc_quant_teacher,
                     "drop": r.drop, "ccc_quant_float": r.ccc_quant_float, "passed": r.passed,
                     "conditions": conditions})
    return {"target": target, "shipped_variant": shipped,
            "verdict": "passed" if drift.variant_passed(shipped) else "failed",
            "windows": int(len(drift.teacher)), "budget": budget, "rows": rows}


def junit_xml(report: dict[str, Any]) -> str:
    """JUnit XML for a :func:`drift_json` report: one test case per variant, dimension and condition."""
    cases = [(row, name, cond) for row in report["rows"] for name, cond in row["conditions"].items()]
    failures = sum(not c["passed"] for _, _, c in cases)
    suites = ET.Element("testsuites", name="edgeser", tests=str(len(cases)), failures=str(failures), errors="0")
    suite = ET.SubElement(suites, "testsuite", name=f"edgeser drift gate ({report['target']})",
                          tests=str(len(cases)), failures=str(failures), errors="0", skipped="0")
    props = ET.SubElement(suite, "properties")
    for key, value in (("shipped_variant", report["shipped_variant"]), ("verdict", report["verdict"]),
                       ("windows", report["windows"]), *report["budget"].items()):
        ET.SubElement(props, "property", name=str(key), value=str(value))
    for row, name, cond in cases:
        shipped = " (shipped)" if row["shipped"] else ""
        case = ET.SubElement(suite, "testcase", classname=f"drift.{report['target']}.{row['variant']}",
                             name=f"{row['dimension']}: {name}{shipped}", time="0")
        if not cond["passed"]:
            ET.SubElement(case, "failure", message=cond["message"], type="DriftBudgetExceeded").text = (
                f"{row['variant']} / {row['dimension']}: {cond['message']}")
        else:
            ET.SubElement(case, "system-out").text = cond["message"]
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_machine_reports(report: dict[str, Any], *, json_path: Path | None, junit_path: Path | None) -> None:
    """Write the JSON and/or JUnit files atomically.

    Raises:
        OutputError: a file cannot be written.
    """
    writers: tuple[tuple[Path | None, Callable[[], str]], ...] = (
        (json_path, lambda: json.dumps(report, indent=2) + "\n"), (junit_path, lambda: junit_xml(report)))
    for path, text in writers:
        if path is None:
            continue
        try:
            with replacing(path) as tmp:
                tmp.write_text(text(), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write ({exc.strerror})", path=path) from None
