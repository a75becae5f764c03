"""Build report: markdown with the drift table, sizes, op census, quantisation choices, and scatter plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .drift import DriftResult
from .metrics import DIMENSIONS
from .plots import Panel, save_scatter

__all__ = ["BuildFacts", "write_report", "scatter_plots"]


@dataclass
class BuildFacts:
    """Everything the report states, each value measured during the build."""

    target: str
    recipe: dict[str, Any]
    student: dict[str, Any]
    teacher: dict[str, Any]
    data: dict[str, Any]
    artefacts: dict[str, dict[str, Any]]
    shipped: str
    timings_s: dict[str, float] = field(default_factory=dict)


def scatter_plots(drift: DriftResult, variant: str, folder: Path) -> list[Path]:
    """One PNG per dimension: the variant against the float model (with y = x) and against the teacher."""
    q = drift.predictions[variant]
    paths = []
    for d, dim in enumerate(DIMENSIONS):
        row = next(r for r in drift.rows if r.variant == variant and r.dimension == dim)
        panels = [Panel(drift.predictions["float"][:, d], q[:, d], "float", variant,
                        f"{dim}: CCC({variant}, float) = {row.ccc_quant_float:.3f}"),
                  Panel(drift.teacher[:, d], q[:, d], "teacher", variant,
                        f"{dim}: CCC({variant}, teacher) = {row.ccc_quant_teacher:.3f}", color="#d62728")]
        paths.append(save_scatter(folder / f"scatter_{variant}_{dim}.png", panels))
    return paths


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _drift_table(drift: DriftResult) -> list[str]:
    lines = ["| variant | dimension | CCC(float, teacher) | CCC(quant, teacher) | drop | CCC(quant, float) | "
             "Pearson(quant, float) | MAE(quant, float) | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in drift.rows:
        verdict = "pass" if r.passed else "**FAIL**: " + "; ".join(r.reasons).replace("|", "\\|")
        lines.append(f"| {r.variant} | {r.dimension} | {r.ccc_float_teacher:.4f} | {r.ccc_quant_teacher:.4f} | "
                     f"{r.drop:.4f} | {r.ccc_quant_float:.4f} | {r.pearson_quant_float:.4f} | "
                     f"{r.mae_quant_float:.4f} | {verdict} |")
    return lines


def _census(details: dict[str, Any]) -> list[str]:
    census = details.get("census") or []
    if not census:
        return []
    lines = ["| op | int8 | float |", "|---|---|---|"]
    lines += [f"| {c['op']} | {c['int8']} | {c['float']} |" for c in census]
    return lines


def _quant_section(name: str, details: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "selection" in details:
        out += ["", f"## Quantisation of `{name}`", "",
                f"Scheme {details['scheme']}, kept in float: {', '.join(details['float_ops']) or 'nothing'}; "
                f"{details.get('activations', 'int8')} activations, int8 weights, "
                f"per-channel {details['per_channel']}, "
                f"calibration {details['calibrate_method']} on {details['calibration_windows']} windows. "
                "Weight range chosen by measurement on the calibration windows:", "",
                "| reduce_range | mean CCC vs float | RMSE vs float |", "|---|---|---|"]
        out += [f"| {t['reduce_range']} | {t['calibration_ccc_vs_float']:.4f} | "
                f"{t['calibration_rmse_vs_float']:.5f} |" for t in details["selection"]]
        out.append(f"\nChosen: reduce_range = {details['reduce_range']}.")
    shift = details.get("output_bias_correction")
    if shift:
        after = details.get("calibration_ccc_vs_float")
        out.append(f"\nOutput bias correction of `{name}`: the mean (float - int8) output on the calibration windows, "
                   f"{' / '.join(f'{v:+.4f}' for v in shift)} (A / D / V), was added to the float head's bias"
                   + (f"; CCC(int8, float) on the calibration windows after it: "
                      f"{' / '.join(f'{v:.4f}' for v in after)}." if after else "."))
    census = _census(details)
    if census:
        out += ["", f"### Op census of `{name}` (int8: runs as an 8-bit integer kernel)", ""]
        out += census
    out += _audit(name, details.get("audit") or [])
    return out


def _audit(name: str, audit: list[dict[str, Any]]) -> list[str]:
    """Every op with its input and output types (the full-integer targets' op audit)."""
    if not audit:
        return []
    keys = [k for k in audit[0] if k not in ("index",)]
    out = ["", f"### Op audit of `{name}` (every op, its tensor types; the build fails on a float op outside "
           "the CPU front-end when the recipe requires int8)", "",
           "| # | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for i, row in enumerate(audit):
        cells = [", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v) for v in (row[k] for k in keys)]
        out.append(f"| {row.get('index', i)} | " + " | ".join(cells) + " |")
    return out


def _kb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1024:.1f} KiB ({n:,} bytes)"


def write_report(path: Path, facts: BuildFacts, drift: DriftResult, plots: list[Path]) -> Path:
    """Write ``report.md`` (relative links to the plots next to it)."""
    b = drift.budget
    verdict = "PASSED" if drift.variant_passed(facts.shipped) else "FAILED"
    data = facts.data
    unit = data["split_by"]
    held = data.get("evaluation_names") or []
    out = [f"# edgeser build report: {facts.target}", "",
           f"**Drift gate for the shipped variant `{facts.shipped}`: {verdict}.** Budget per dimension: "
           "|CCC(quant, teacher) - CCC(float, teacher)| "
           f"<= {b.max_ccc_drop:g} and CCC(quant, float) >= {b.min_ccc_vs_float:g}, measured on "
           f"{_plural(len(drift.teacher), 'held-out window')} from {_plural(data['evaluation_groups'], unit)}"
           + (f" ({_names(held)})" if held else "") + ", disjoint from calibration.", ""]
    if data["evaluation_groups"] < 2:
        out += [f"Only one {unit} was held out: the drift is judged on that {unit} alone. Give more {unit}s "
                "(a `speaker` column in the audio list) for a judgement that generalises.", ""]
    if drift.variant_passed(facts.shipped) and not drift.passed:
        out.append(f"The shipped variant `{facts.shipped}` passes; variants that are not shipped failed:")
    for r in drift.failures():
        out.append(f"- failing: **{r.variant} / {r.dimension}**: {'; '.join(r.reasons)}".replace("|", "\\|"))
    calibration = data.get("calibration_names") or []
    out += ["", "## Inputs", "",
            f"- recipe: `{facts.recipe.get('source', '')}` ({facts.recipe.get('description', '')})",
            f"- student: `{facts.student['path']}` ({facts.student['arch']}, {facts.student['trainable']:,} trainable "
            f"parameters, sha256 {facts.student['sha256'][:16]})",
            f"- teacher: {facts.teacher['name']} (identity {facts.teacher['identity']})",
            f"- audio: {_plural(data['files'], 'file')}, {_plural(data['windows'], 'window')} of "
            f"{data['window_seconds']:g} s; split by {unit}: "
            f"{_plural(data['calibration_windows'], 'calibration window')} from "
            f"{_plural(data['calibration_groups'], unit)}" + (f" ({_names(calibration)})" if calibration else "")
            + f", {_plural(data['evaluation_windows'], 'evaluation window')} from "
            f"{_plural(data['evaluation_groups'], unit)}" + (f" ({_names(held)})" if held else ""), "",
            "## Drift", "",
            "f: the float model, q: the quantised variant, T: the teacher; drop = |CCC(q, T) - CCC(f, T)|.", ""]
    out += _drift_table(drift) + [""]
    out += [f"![{p.stem}]({p.parent.name}/{p.name})" for p in plots]
    out += ["", "## Sizes", "", "| artefact | in the bundle | size |", "|---|---|---|"]
    for name, art in facts.artefacts.items():
        where = f"`{art['bundle_file']}`" if art.get("bundle_file") else "not shipped (measured only)"
        out.append(f"| {name}{' (shipped)' if name == facts.shipped else ''} | {where} | {_kb(art['bytes'])} |")
    for name, art in facts.artefacts.items():
        out += _quant_section(name, art.get("details", {}))
    if facts.timings_s:
        out += ["", "## Timings", "", "| step | seconds |", "|---|---|"]
        out += [f"| {k} | {v:.1f} |" for k, v in facts.timings_s.items()]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
