"""The drift gate for a user's CI: JUnit XML and JSON, and the CI jobs that docs/ci.md hands out."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from junitparser import Failure, JUnitXml
from typer.testing import CliRunner

from edgeser import __version__
from edgeser.cli import app
from edgeser.testing import synth_corpus

pytestmark = pytest.mark.slow
cli = CliRunner()
DOC = Path(__file__).parents[1] / "docs" / "ci.md"


def _build(tmp, student, teacher, corpus, recipe, *extra):
    args = ["build", "--recipe", str(recipe), "--student", str(student), "--teacher", str(teacher), "--audio",
            str(corpus), "--out", str(tmp / "bundle"), "--quiet", "--json", str(tmp / "drift.json"),
            "--junit", str(tmp / "drift.xml"), *extra]
    return cli.invoke(app, args)


def _check_reports(tmp, *, verdict):
    report = json.loads((tmp / "drift.json").read_text())
    assert report["verdict"] == verdict
    xml = JUnitXml.fromfile(str(tmp / "drift.xml"))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].name.startswith("edgeser drift gate")
    cases = list(suites[0])
    assert len(cases) == len(report["rows"]) * 2  # two conditions per variant and dimension
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    expected = [(r["variant"], r["dimension"], name) for r in report["rows"]
                for name, cond in r["conditions"].items() if not cond["passed"]]
    assert len(failed) == len(expected) == suites[0].failures
    for case in failed:
        message = case.result[0].message
        assert re.search(r"\d\.\d{4} [<>] \d", message), message  # the numbers and the limit
    assert all(r["passed"] == all(c["passed"] for c in r["conditions"].values()) for r in report["rows"])
    return report, failed


def test_passing_build_writes_a_green_junit_and_json(tmp_path, student, teacher_onnx, corpus, small_recipe):
    result = _build(tmp_path, student, teacher_onnx, corpus, small_recipe)
    assert result.exit_code == 0, result.output
    report, failed = _check_reports(tmp_path, verdict="passed")
    assert failed == [] and report["shipped_variant"] == "int8"


def test_failing_build_still_writes_both_and_names_the_dimension(tmp_path, student, teacher_onnx, corpus,
                                                                  small_recipe):
    result = _build(tmp_path, student, teacher_onnx, corpus, small_recipe, "--float-ops", "")
    assert result.exit_code == 3, result.output
    report, failed = _check_reports(tmp_path, verdict="failed")
    assert failed and all("(shipped)" in c.name for c in failed)


def _jobs():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    github, gitlab = (yaml.safe_load(b) for b in blocks)
    gh_steps = github["jobs"]["drift"]["steps"]
    gh = [s["run"] for s in gh_steps if "run" in s]
    gl = gitlab["edgeser-drift"]["script"]
    return github, gitlab, gh, gl


def test_the_ci_jobs_in_the_docs_run_as_written(tmp_path, monkeypatch, student, teacher_onnx):
    github, gitlab, gh, gl = _jobs()
    assert gh == gl, "the GitHub and GitLab jobs run different commands"
    install, build = gh
    assert install == f"pip install vendor/edgeser-{__version__}-py3-none-any.whl"
    args = shlex.split(build)
    assert args[0] == "edgeser"
    # Lay out a repository as the jobs expect it, with tiny real parts, and run the job's command verbatim.
    (tmp_path / "models").mkdir()
    shutil.copy(student, tmp_path / "models" / "student.safetensors")
    shutil.copy(teacher_onnx, tmp_path / "models" / "teacher.onnx")
    listed = synth_corpus(tmp_path / "data" / "heldout", speakers=4, clips=40, seconds=2.0, seed=3)
    assert listed == tmp_path / "data" / "heldout" / "list.csv"
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, args[1:])
    assert result.exit_code in (0, 3), result.output
    upload = next(s for s in github["jobs"]["drift"]["steps"] if s.get("uses", "").startswith("actions/upload"))
    published = upload["with"]["path"].split()
    must_exist = ["out/drift.xml", "out/drift.json", "out/edgeser-rpi/report.md"]
    if result.exit_code == 0:
        must_exist += ["out/edgeser-rpi/plots/", "out/edgeser-rpi.tar.gz"]
    for path in must_exist:
        assert path in published and (tmp_path / path).exists(), path
    assert gitlab["edgeser-drift"]["artifacts"]["reports"]["junit"] == "out/drift.xml"
    assert set(gitlab["edgeser-drift"]["artifacts"]["paths"]) == set(published) - {"out/drift.xml"}
