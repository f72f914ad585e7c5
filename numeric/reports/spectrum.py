"""The spectrum command's CSV files and printed summary (:mod:`sobolev_rf.numeric.studies.spectrum`)."""

from __future__ import annotations

from collections.abc import Iterable

from ..artifacts import csv_text, fmt
from ..studies.spectrum import Spectrum


def csv_files(command: str, spec: Spectrum, eigs: Iterable[float] | None) -> dict[str, str]:
    """``spectrum.csv`` (x, density, Re m, Im m, note), ``spectrum_atoms.csv`` (x, mass) and, with the
    eigenvalues of a finite draw, ``spectrum_eigenvalues.csv``; each headed by the command line."""
    files = {
        "spectrum.csv": csv_text(
            command,
            ["x", "density", "stieltjes_re", "stieltjes_im", "note"],
            [
                [fmt(xi), fmt(r), fmt(m.real), fmt(m.imag), note or ""]
                for xi, r, m, note in zip(spec.x, spec.density, spec.stieltjes, spec.notes)
            ],
        ),
        "spectrum_atoms.csv": csv_text(command, ["x", "mass"], [[fmt(p), fmt(w)] for p, w in spec.atoms]),
    }
    if eigs is not None:
        files["spectrum_eigenvalues.csv"] = csv_text(command, ["eigenvalue"], [[fmt(e)] for e in eigs])
    return files


def summary(spec: Spectrum, expression: str, a: float, b: float, eta: float) -> str:
    """The printed table: how the grid on [a, b] was solved, the atoms, the mass captured, the points left
    empty and about 20 rows of the density."""
    num = len(spec.x)
    mass = spec.masses()
    lines = [
        f"spectrum of {expression}: {num} points on [{a:g}, {b:g}], eta = {eta:g} "
        f"({spec.stats['anchors']} anchors from z -> i*inf, {spec.stats['continued_along_x']} continued along x, "
        f"{spec.stats['fallback_from_infinity']} re-solved)"
    ]
    lines += [f"  atom at x = {p:.8g}: mass {w:.8g}" for p, w in spec.atoms]
    lines.append(
        f"  mass of the continuous part on the grid: {mass['continuous_on_grid']:.6f}; with the atoms: "
        f"{mass['total']:.6f}"
    )
    if mass["missing"] > 0.01:
        lines.append(
            f"  the grid and the atoms capture {100 * mass['total']:.1f} % of the mass: "
            f"{100 * mass['missing']:.1f} % lies outside [{a:g}, {b:g}] or at unresolved points (widen --x)"
        )
    empty = sum(note is not None for note in spec.notes)
    if empty:
        reasons = sorted({note for note in spec.notes if note is not None})
        lines.append(f"  {empty} grid points have no density value: " + "; ".join(reasons))
    lines.append(f"  {'x':>12}  {'density':>14}")
    lines += [f"  {spec.x[i]:12.6g}  {spec.density[i]:14.8g}" for i in range(0, num, max(1, num // 20))]
    return "\n".join(lines)
