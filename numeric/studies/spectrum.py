"""Limiting spectral densities of self-adjoint rational matrix expressions, by Stieltjes inversion.

For a symmetric N × N expression M (Gaussian and diagonal random matrices, see ``sobolev-rf pencil``) the
Stieltjes transform m(z) = (1/N) tr (M − z)⁻¹ is the normalised trace of one output of a linear pencil, so its
operator-valued fixed point (:func:`sobolev_rf.derive.ovfp.derive_system`) gives it at every complex z.
The density is ρ(x) = lim_{η→0⁺} Im m(x + iη)/π, evaluated at the given η > 0.

How the fixed point is followed:

* *anchors*: every ``stride``-th grid point is solved by continuation from z → i∞ (the physical branch,
  :meth:`~sobolev_rf.numeric.theory.ovfp.FixedPoint.continue_from_infinity`), all anchors at once;
* *continuation along x*: from each anchor, Newton steps to the next grid points (all chains at once), started
  from the previous solution (linearly extrapolated from the last two); a step is accepted when Newton
  converges, the solution moves continuously and Im m ≥ 0 (the sign of the imaginary part is checked);
* points that fail are solved again from z → i∞.

Atoms (point masses w at x₀: m(z) ≈ −w/(z − x₀)) are found from the grid (local maxima of Im m,
unresolved points, and sign changes + → − of Re m with a large residue estimate) and at 0 whether or not the
grid contains it (the kernel of a rank-deficient expression), located by fitting the pole,
1/m(z) ≈ −(z − x₀)/w, from two evaluations ever closer to the axis (ε = 10⁻⁴ s … 10⁻⁶ s, s the scale
of the x range, as close as the solver converges and until the fit stops moving; a location within 10⁻² ε
of 0 is reported as 0), and kept when the mass estimate μ(ε) = ε Im m(x₀ + iε) at the two closest
converged distances (ε ≤ 10⁻⁴ s) agrees to 2 % (a continuous density, even one with an inverse-square-root
edge, gives μ → 0 like √ε or faster); the mass is μ extrapolated to ε = 0 through the three closest
distances.  Each level is reached by descending from the level above (:meth:`StieltjesSolver.descend`: a few
Newton rungs), not by a new path from i∞.  The reported density is the continuous part: each atom's
Lorentzian w η / (π((x − x₀)² + η²)) is subtracted; at grid points inside an atom's core, where the
uncertainty this leaves (10⁻⁹ of |m|, plus the Lorentzian times the mass's relative error, estimated by the
size of the extrapolation step) exceeds 10⁻³ of the density's maximum, the continuous part is not
determined at this η and is left empty (NaN), with the reason in :attr:`Spectrum.notes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...derive.errors import UserError
from ..theory.ovfp import FixedPoint

#: Atoms lighter than this are not reported.
MIN_ATOM_MASS = 1e-6
#: Distances from the axis (relative to the scale of the x range) of the pole fits, and of the mass estimates.
EPS_FIT = np.array([1e-4, 1e-5, 1e-6])
EPS_MASS = np.array([1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
#: An atom's mass estimates at the two closest distances must agree to this relative precision.
ATOM_STABILITY = 0.02
#: Largest side of a finite draw's matrices.
MAX_DRAW_DIMENSION = 20000
#: Relative precision assumed for m(z) (the solver's convergence test) when judging the continuous part.
RELATIVE_PRECISION = 1e-9


@dataclass
class Spectrum:
    """A limiting spectral density on a grid: ``stieltjes`` = m(x + iη), ``density`` its continuous part,
    ``atoms`` a list of (location, mass), ``converged`` where the physical branch was found, ``notes`` the
    reason wherever the density is left empty (None elsewhere)."""

    x: np.ndarray
    eta: float
    stieltjes: np.ndarray
    density: np.ndarray
    atoms: list[tuple[float, float]]
    converged: np.ndarray
    stats: dict[str, int] = field(default_factory=dict)
    notes: list[str | None] = field(default_factory=list)

    def masses(self) -> dict[str, float]:
        """The mass of the continuous part on the grid (trapezoidal rule, empty points as 0), of the atoms,
        their total and what the grid and the atoms miss (1 − total: mass outside the grid or unresolved)."""
        rho = np.nan_to_num(self.density)
        continuous = float(np.sum(0.5 * (rho[1:] + rho[:-1]) * np.diff(self.x))) if self.x.size > 1 else 0.0
        atoms = float(sum(w for _, w in self.atoms))
        total = continuous + atoms
        return {"continuous_on_grid": continuous, "atoms": atoms, "total": total, "missing": 1.0 - total}

    def as_dict(self) -> dict[str, Any]:
        """``{"x", "density", "atoms"}`` (unresolved points as null) plus the η and the Stieltjes transform."""

        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "x": [float(v) for v in self.x],
            "density": [num(v) for v in self.density],
            "atoms": [{"x": float(a), "mass": float(w)} for a, w in self.atoms],
            "eta": self.eta,
            "stieltjes": [{"re": num(v.real), "im": num(v.imag)} for v in self.stieltjes],
            "unresolved": int((~self.converged).sum()),
            "density_notes": list(self.notes) if self.notes else [None] * len(self.x),
            "mass": self.masses(),
        }


class StieltjesSolver:
    """m(z) = (1/N) tr(M − z)⁻¹ at arrays of complex z from the fixed point of a resolvent pencil.

    ``system``: the :class:`~sobolev_rf.numeric.theory.ovfp.FixedPoint` (or the derived
    :class:`~sobolev_rf.derive.ovfp.OVSystem`) of (M − zI)⁻¹ (output ``output``); ``z``: the name of the
    spectral parameter; ``values``: every other parameter (real)."""

    def __init__(self, system: Any, z: str, values: Mapping[str, float], output: str = "m"):
        self.fixed_point = system if isinstance(system, FixedPoint) else FixedPoint.of(system)
        self.z = z
        self.values = dict(values)
        self.output = list(self.fixed_point.output_names).index(output)
        names = list(self.fixed_point.parameters)
        if z not in names:
            raise UserError("the expression does not depend on the spectral parameter.")
        missing = [n for n in names if n != z and n not in self.values]
        if missing:
            raise UserError(f"missing parameter values for {', '.join(missing)}; pass them with --param NAME=VALUE.")

    @property
    def unknowns(self) -> int:
        """The number of unknowns of the fixed point."""
        return len(self.fixed_point.unknowns)

    def params(self, z: np.ndarray) -> list[np.ndarray]:
        z = np.asarray(z, dtype=complex)
        return [
            z if name == self.z else np.full(z.shape, float(self.values[name])) for name in self.fixed_point.parameters
        ]

    def trace(self, g: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.fixed_point.output_values(g, self.params(z))[self.output]

    def from_infinity(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unknowns, m and a converged mask at the points ``z``, continued from z → i∞."""
        z = np.atleast_1d(np.asarray(z, dtype=complex))
        if z.size == 0:
            n = self.unknowns
            return np.zeros((n, 0), complex), np.zeros(0, complex), np.zeros(0, bool)
        g, ok = self.fixed_point.continue_from_infinity(self.params(z))
        m = self.trace(g, z)
        ok = ok & np.isfinite(m) & (m.imag * np.sign(z.imag) >= -1e-9 * np.abs(m))
        return g, m, ok

    def descend(
        self, z: np.ndarray, g_above: np.ndarray, height: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`from_infinity`, continued down from solutions ``g_above`` at z + i·``height`` (the same
        branch, a few Newton rungs instead of the whole path); points where that fails come from z → i∞."""
        z = np.atleast_1d(np.asarray(z, dtype=complex))
        g, ok = self.fixed_point.continue_from_infinity(
            self.params(z), x_top=g_above, height=np.broadcast_to(height, z.shape)
        )
        m = self.trace(g, z)
        ok = ok & np.isfinite(m) & (m.imag * np.sign(z.imag) >= -1e-9 * np.abs(m))
        redo = np.flatnonzero(~ok)
        if redo.size:
            g[:, redo], m[redo], ok[redo] = self.from_infinity(z[redo])
        return g, m, ok


def stieltjes_grid(
    solver: StieltjesSolver,
    x: np.ndarray,
    eta: float,
    stride: int = 8,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """m(x + iη) on the grid ``x`` (anchors from z → i∞, continuation along x, fallback from i∞)."""
    size = len(x)
    z = np.asarray(x, dtype=float) + 1j * eta
    n = solver.unknowns
    g = np.full((n, size), np.nan, dtype=complex)
    m = np.full(size, np.nan, dtype=complex)
    ok = np.zeros(size, bool)
    anchors = np.arange(0, size, stride)
    ga, ma, oka = solver.from_infinity(z[anchors])
    g[:, anchors], m[anchors], ok[anchors] = ga, ma, oka
    done = int(oka.sum())
    if callback:
        callback(done, size)
    chain_ok = oka.copy()
    for k in range(1, stride):
        idx = anchors + k
        live = (idx < size) & chain_ok
        idx, src = idx[live], (anchors + k - 1)[live]
        if idx.size == 0:
            break
        pred = g[:, src]
        if k >= 2:
            prev2 = g[:, src - 1]
            pred = 2 * pred - prev2
        gn, conv = solver.fixed_point.newton(pred, solver.params(z[idx]), max_iter=12)
        mn = solver.trace(gn, z[idx])
        jump = np.max(np.abs(gn - g[:, src]) / (1 + np.abs(g[:, src])), axis=0) if n else np.zeros(idx.size)
        good = conv & np.isfinite(mn) & (mn.imag >= -1e-9 * np.abs(mn)) & (jump < 0.5)
        g[:, idx[good]], m[idx[good]], ok[idx[good]] = gn[:, good], mn[good], True
        chain_ok[np.flatnonzero(live)[~good]] = False
        done += int(good.sum())
        if callback:
            callback(done, size)
    stats = {"anchors": int(anchors.size), "continued_along_x": int(ok.sum() - oka.sum())}
    redo = np.flatnonzero(~ok)
    if redo.size:
        gr, mr, okr = solver.from_infinity(z[redo])
        g[:, redo], m[redo], ok[redo] = gr, mr, okr
        m[redo[~okr]] = np.nan
        if callback:
            callback(int(ok.sum()), size)
    stats["fallback_from_infinity"] = int(redo.size)
    stats["unresolved"] = int((~ok).sum())
    return m, ok, stats


def _inside(xc: np.ndarray, x: np.ndarray, h: float, extra: Sequence[float]) -> np.ndarray:
    """Candidates within the grid (± one step) or within ten steps of an extra candidate."""
    keep = (xc >= x[0] - h) & (xc <= x[-1] + h)
    for e in extra:
        keep |= np.abs(xc - e) <= 10 * h
    return keep


def _distinct(xc: np.ndarray, found: np.ndarray, width: float) -> np.ndarray:
    """One candidate per cluster: fits that have moved within ``width`` (two grid steps, below what the grid
    resolves) of one another follow the same pole, so only the first one, a converged fit first, is kept
    (several candidates around one atom otherwise each pay for their own path to the axis)."""
    keep = np.zeros(xc.size, bool)
    for i in sorted(range(xc.size), key=lambda i: (not found[i], i)):
        if not np.any(keep & (np.abs(xc - xc[i]) <= width)):
            keep[i] = True
    return keep


def find_atoms(
    solver: StieltjesSolver,
    x: np.ndarray,
    m: np.ndarray,
    eta: float,
    with_error: bool = False,
    extra: Sequence[float] = (0.0,),
) -> list[tuple[float, ...]]:
    """Point masses (location, mass) of the limiting law inside [x₀, x_end], and at the ``extra`` candidate
    locations wherever they are (by default 0, the kernel of a rank-deficient expression, so that its atom is
    reported whether or not the grid contains 0; module docstring); with ``with_error`` a third entry, an
    estimate of the mass's error (the size of the extrapolation step)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return []
    scale = max(abs(x[0]), abs(x[-1]), x[-1] - x[0])
    h = float(np.min(np.diff(x)))
    im, re = m.imag, m.real
    cands: list[float] = []
    finite = np.isfinite(m)
    for j in range(x.size):
        if not finite[j]:
            cands.append(float(x[j]))  # an unresolved point: often the pole itself
            continue
        left = im[j - 1] if j > 0 and finite[j - 1] else -np.inf
        right = im[j + 1] if j + 1 < x.size and finite[j + 1] else -np.inf
        if im[j] >= left and im[j] >= right and eta * im[j] >= 1e-2 * MIN_ATOM_MASS:
            cands.append(float(x[j]))
    for j in range(x.size - 1):
        if finite[j] and finite[j + 1] and re[j] > 0 > re[j + 1]:
            w = (x[j + 1] - x[j]) / (1 / re[j] - 1 / re[j + 1])
            if w >= MIN_ATOM_MASS:
                cands.append(float(x[j] + w / re[j]))
    cands += [float(e) for e in extra]
    if not cands:
        return []
    xc = np.array(sorted(set(np.round(np.array(cands), 12).tolist())))  # (np.unique would import numpy.ma)
    found = np.zeros(xc.size, bool)
    closest = np.full(xc.size, np.inf)  # the closest distance of a converged pole fit
    g_prev: np.ndarray | None = None  # the solutions at the previous (higher) level, at z1
    eps_prev = 0.0
    for eps in EPS_FIT * scale:  # pole fit 1/m(z) ≈ −(z − x₀)/w, ever closer to the axis
        z1 = xc + 1j * eps
        z2 = xc + 2j * eps
        if g_prev is None:
            g2, m2, ok2 = solver.from_infinity(z2)
        else:
            g2, m2, ok2 = solver.descend(z2, g_prev, eps_prev - 2 * eps)
        g1, m1, ok1 = solver.descend(z1, g2, eps)
        ok = np.concatenate([ok1, ok2])
        with np.errstate(all="ignore"):
            w = -(z2 - z1) / (1 / m2 - 1 / m1)
            x0 = (z1 + w / m1).real
        good = ok[: xc.size] & ok[xc.size :] & np.isfinite(x0) & (w.real > 0) & (np.abs(x0 - xc) < 10 * h + 1e3 * eps)
        settled = bool(np.all(~good | (np.abs(x0 - xc) <= 1e-3 * eps)))  # the fit no longer moves
        xc = np.where(good, x0, xc)  # where the solve failed this close to the axis, keep the last fit
        closest = np.where(good, eps, closest) if found.size else closest
        found |= good
        keep = _inside(xc, x, h, extra) & _distinct(xc, found, 2 * h)
        xc, found, closest, g_prev = xc[keep], found[keep], closest[keep], g1[:, keep]
        eps_prev = eps
        if xc.size == 0:
            return []
        if not good.any() or settled:
            break  # closer still would fail too, or change nothing
    xc, closest = xc[found], closest[found]
    if xc.size == 0:
        return []
    levels = EPS_MASS * scale
    levels = levels[levels >= 0.99 * float(np.min(closest))]  # no closer than the fits could go
    mm = np.zeros((levels.size, xc.size), complex)
    ok = np.zeros((levels.size, xc.size), bool)
    g = np.zeros(0)
    for i, e in enumerate(levels):  # down the vertical line through each atom, level by level
        if i == 0:
            g, mm[i], ok[i] = solver.from_infinity(xc + 1j * e)
        else:
            g, mm[i], ok[i] = solver.descend(xc + 1j * e, g, levels[i - 1] - e)
    mu = levels[:, None] * mm.imag
    atoms: list[tuple[float, float, float]] = []
    for c in range(xc.size):
        valid = np.flatnonzero(ok[:, c] & np.isfinite(mu[:, c]))
        if valid.size < 2 or levels[valid[-1]] > 1e-4 * scale:
            continue
        ma, mb = mu[valid[-2], c], mu[valid[-1], c]
        if not (mb >= MIN_ATOM_MASS and abs(ma - mb) <= ATOM_STABILITY * mb):
            continue
        a = 0.0 if abs(xc[c]) <= 1e-2 * closest[c] else float(xc[c])  # below the resolution of the pole fit
        use = valid[-3:]  # μ(ε) = w + c₁ε + c₂ε² …: polynomial extrapolation to ε = 0
        e, v = levels[use], mu[use, c]
        w = float(
            sum(v[i] * np.prod([e[k] / (e[k] - e[i]) for k in range(len(use)) if k != i]) for i in range(len(use)))
        )
        if not any(abs(a - b[0]) <= 1e-6 * scale for b in atoms):
            atoms.append((a, float(w), abs(float(w) - float(mb)) + RELATIVE_PRECISION * abs(float(w))))
    return sorted(atoms) if with_error else sorted((a, w) for a, w, _ in atoms)


def spectral_density(
    solver: StieltjesSolver,
    x_values: Sequence[float] | np.ndarray,
    eta: float,
    stride: int = 8,
    atoms: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> Spectrum:
    """The limiting spectral density on the grid ``x`` at η > 0: m(x + iη), atoms, and ρ = Im m/π minus the
    atoms' Lorentzians."""
    x = np.asarray(x_values, dtype=float)
    if not eta > 0:
        raise UserError(f"eta must be > 0, got {eta:g}.")
    m, ok, stats = stieltjes_grid(solver, x, eta, stride, callback)
    found = find_atoms(solver, x, m, eta, with_error=True) if atoms else []
    density = m.imag / math.pi
    error = RELATIVE_PRECISION * np.abs(m) / math.pi  # what the solve leaves uncertain
    for a, w, dw in found:
        lorentz = w * eta / (math.pi * ((x - a) ** 2 + eta**2))
        density = density - lorentz
        error = error + (dw / w) * lorentz  # and what the mass leaves uncertain
    density = np.where(ok, np.maximum(density, 0.0), np.nan)
    scale = float(np.nanmax(density)) if np.any(np.isfinite(density)) else 1.0
    core = ok & (error > 1e-3 * max(scale, 1e-300))  # inside an atom's core: Im m is all atom
    density[core] = np.nan
    stats["atom_core"] = int(core.sum())
    notes: list[str | None] = [None] * x.size
    for j in np.flatnonzero(~ok):
        notes[j] = "not converged on the physical branch at this eta"
    for j in np.flatnonzero(core):
        if found:
            a = min(found, key=lambda atom: abs(x[j] - atom[0]))[0]
            notes[j] = f"inside the core of the atom at {a:.6g}: the continuous part is not resolved at this eta"
        else:
            notes[j] = "below the precision of the solution at this eta"
    return Spectrum(x, float(eta), m, density, [(a, w) for a, w, _ in found], ok, stats, notes)


# ======================================================================================= building
def latex_lines(expr: Any, width: int = 110) -> list[str]:
    """The LaTeX of an expression in lines of at most about ``width`` characters, broken between the terms
    of a sum (for a mathtext title)."""
    import sympy as sp
    from sympy import MatAdd

    terms = list(expr.args) if isinstance(expr, MatAdd) else [expr]
    lines: list[str] = []
    for term in terms:
        tex = sp.latex(term)
        if lines and len(lines[-1]) + len(tex) + 3 <= width:
            lines[-1] += (" " if tex.startswith("-") else " + ") + tex
        else:
            lines.append(tex if not lines or tex.startswith("-") else "+ " + tex)
    return lines


def resolvent_system(
    expr: Any, gaussians: Mapping[str, bool], laws: Sequence[Any], taken: Sequence[str] = ()
) -> tuple[Any, str]:
    """The fixed-point system of (M − zI)⁻¹ (output ``m``) and the name chosen for z."""
    import sympy as sp
    from sympy import Identity, Inverse

    from ...derive.laws import GaussianMatrix
    from ...derive.ovfp import derive_system
    from ...derive.pencil import linearize

    used = {str(s) for s in expr.free_symbols} | set(taken)
    name = next(c for c in ("z", "zeta", "z_", "z__", "spectral_z") if c not in used)
    z = sp.Symbol(name)
    R = Inverse(expr - z * Identity(expr.rows))
    pencil = linearize({"m": R})
    system = derive_system(
        pencil, [GaussianMatrix(g, 1, sym) for g, sym in gaussians.items() if g in pencil.symbols], laws
    )
    return system, name


def finite_dimensions(expr: Any, symbols: Mapping[str, Any], values: Mapping[str, float], size: int) -> dict[Any, int]:
    """The dimensions of a finite draw of ``expr`` that is ``size`` × ``size`` (every dimension keeps its ratio
    to the others, as given in ``values``)."""
    import sympy as sp

    dim_syms: set[Any] = set()
    for sym in symbols.values():
        for d in (sym.rows, sym.cols):
            dim_syms |= sp.sympify(d).free_symbols
    ratios = {}
    for d in dim_syms:
        if str(d) not in values:
            raise UserError(f"give the ratio of dimension {d} with --param {d}=VALUE for the finite draw.")
        ratios[d] = float(values[str(d)])
    rows = float(sp.sympify(expr.rows).xreplace(ratios))
    scale = size / rows
    return {d: max(1, int(round(r * scale))) for d, r in ratios.items()}


def finite_draw_bytes(expr: Any, symbols: Mapping[str, Any], dims: Mapping[Any, int]) -> int:
    """An upper estimate of the memory of one finite draw: every matrix, one intermediate of the largest size
    per operation of the expression, and the eigensolver's copies and workspace (float64)."""
    import sympy as sp
    from sympy.matrices.expressions import Inverse, MatAdd, MatMul, Transpose

    sizes = [int(sp.sympify(s.rows).xreplace(dims)) * int(sp.sympify(s.cols).xreplace(dims)) for s in symbols.values()]
    biggest = max([int(v) for v in dims.values()] + [1]) ** 2
    ops = sum(1 for node in sp.preorder_traversal(expr) if isinstance(node, (Inverse, MatAdd, MatMul, Transpose)))
    return 8 * (sum(sizes) + (ops + 4) * biggest)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable; physical memory where unknown)."""
    import os

    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 8 << 30


def check_finite_draw(expr: Any, symbols: Mapping[str, Any], values: Mapping[str, float], size: int) -> None:
    """Refuse a finite draw whose matrices exceed :data:`MAX_DRAW_DIMENSION` or half the available memory."""
    dims = finite_dimensions(expr, symbols, values, size)
    biggest = max([size] + list(dims.values()))
    if biggest > MAX_DRAW_DIMENSION:
        raise UserError(f"the finite draw would need a {biggest} x {biggest} matrix; choose a smaller --n.")
    need, have = finite_draw_bytes(expr, symbols, dims), available_memory()
    if need > have // 2:
        raise UserError(
            f"the finite draw of size {size} would need about {need / 2**30:.1f} GiB of memory "
            f"({have / 2**30:.1f} GiB available); choose a smaller --n."
        )


def finite_eigenvalues(
    expr: Any,
    symbols: Mapping[str, Any],
    gaussians: Mapping[str, bool],
    laws: Sequence[Any],
    values: Mapping[str, float],
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Eigenvalues of one finite draw of the expression, scaled so that it is ``size`` × ``size`` (every
    dimension keeps its ratio to the others, as given in ``values``; refused beyond the memory at hand)."""

    from ...derive.laws import finite_instance
    from ...derive.pencil import copy_counts, evaluate_expression

    check_finite_draw(expr, symbols, values, size)
    dims = finite_dimensions(expr, symbols, values, size)
    copies = copy_counts(expr, values)
    mats = finite_instance({k: v for k, v in symbols.items()}, gaussians, laws, dims, rng, copies=copies)
    subs: dict[Any, Any] = dict(dims)
    for s in expr.free_symbols:
        if str(s) in values and s not in subs:
            subs[s] = float(values[str(s)])
    M = evaluate_expression(expr, mats, subs)
    del mats
    M = (M + M.T) / 2
    return np.linalg.eigvalsh(M)
