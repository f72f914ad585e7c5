"""Operator-valued fixed points (matrix Dyson equations) of linear pencils.

Setting.  A pencil L = Λ + K (see :mod:`sobolev_rf.derive.pencil`) whose atoms are

* Gaussian matrices X (iid entries of variance ``variance``; rectangular, or symmetric square), the
  *random* part K, and
* diagonal matrices D = diag(ζ_j) with ζ_j iid from a given law (standard normal coordinates, possibly
  several D_l sharing the index j so that ζ_j ∈ ℝ^k, or a discrete law), part of the deterministic Λ.

Conditionally on the ζ's, Gaussian integration by parts gives for G = E L⁻¹, in the proportional limit,
the matrix Dyson equation

    G = (Λ − η(G))⁻¹,     η(G) = E[K G K]   (covariance map),

where, for X placed as c_a X in block (i, k) and as c_b Xᵀ in block (l, j) (or Xᵀ then X),
E[c_a X G_{kl} c_b Xᵀ] = c_a c_b v tr(G_{kl}) I: η(G)_{ij} is a combination of *normalised block traces*
g_{kl} = (1/s_k) tr G_{kl} (the transposed pairings X…X are O(1/N) and dropped).

Derivation steps (all SymPy, :func:`derive_system`):

1. *Balance*: with every dimension ∝ N, choose block scalings s_i = R^{e_i} (R a dimension symbol,
   e_i half-integers) so that constant blocks are O(1) and Gaussian blocks O(N^{-1/2}); the equations are
   covariant under this diagonal similarity and every pairing coefficient c_a c_b v s_k becomes O(1)
   (an inconsistent system of exponents means the expression is not in the proportional regime).
2. *Scalarise*: blocks of equal size form a class; Λ − η(G) restricted to a class is a small matrix whose
   entries are scalars, the ζ's and the unknown traces; G = (Λ − η)⁻¹ is taken entrywise in ζ
   (cofactors over the determinant, per connected component: sparse blocks are inverted separately).
   The unknown of a pair (k, l) in a class carrying diagonals is g_{kl} = E_ζ[G_{kl}(ζ)].
3. *Reduce*: partition refinement from "all unknowns zero" finds the largest invariant set of unknowns
   that vanish (identically, or by oddness of G_{kl} under ζ_l → −ζ_l for normal laws) and of unknowns
   that are equal (identical functions up to a permutation of exchangeable normal coordinates).  The
   invariant subspace contains the fixed-point iteration started at g = 0 (G = Λ⁻¹), i.e. the physical
   branch.  Identities are tested numerically at random points (Schwartz–Zippel style, float tolerance).
4. *Integrate*: E_ζ of a rational function with denominator A + B Σ_{l∈S} ζ_l² (equal B) is closed form:
   with β = A/B, m = |S| and ‖ζ_S‖² ~ χ²_m independent of the direction θ = ζ_S/‖ζ_S‖,

       E[1/(β + χ²_m)] = ½ e^{β/2} E_{m/2}(β/2) = ½ U(1, 2 − m/2, β/2)  (m = 1: √(π/(2β)) erfcx(√(β/2))),

   E[ζ^{2α}/(A + B‖ζ_S‖²)] = E[θ^{2α}] E[R^{2j}/(A + BR²)] with E[θ^{2α}] = Π(2α_l−1)!!/Π_{t<j}(m+2t),
   and R^{2j}/(β + R²) reduced by polynomial division to χ² moments plus (−β)^j/(β + R²).
   Discrete laws are summed exactly.  Anything else is left as an unevaluated :class:`GaussExpectation`,
   integrated numerically by tensor Gauss–Hermite (n = 120, 60, 28, 14 nodes per axis in 1, 2, 3, ≥4
   dimensions); the reported error is |Q_n − Q_{n/2}|, a conservative estimate for Q_n since for an integrand
   analytic in a strip |Im ζ| < σ the error decays geometrically in σ√n.  Never Monte Carlo.
5. *Solve* (:meth:`OVSystem.solve`): damped fixed-point iteration in double precision (scipy ``root`` as
   fallback), then Newton polishing in 30-digit mpmath arithmetic, so closed-form systems reach 1e-13.

:func:`sobolev_traces` applies all of this to the first-order Sobolev resolvent of THEORY.md §3.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import scipy.optimize
import scipy.special
import sympy as sp
from sympy import Identity, Inverse, MatrixSymbol

from .errors import UserError
from .pencil import Pencil, linearize


# ======================================================================================= specifications
@dataclass(frozen=True)
class GaussianMatrix:
    """A Gaussian matrix symbol: iid centred entries of variance ``variance`` (symmetric: a Wigner matrix)."""

    name: str
    variance: sp.Expr | float = 1
    symmetric: bool = False


@dataclass(frozen=True)
class DiagonalLaw:
    """Diagonal matrix symbols D_l = diag(ζ_{·l}) sharing the index j, with ζ_j iid from one (joint) law.

    ``kind="normal"``: the coordinates ζ_{jl} are iid N(0, 1) (so ζ_j ~ N(0, I_k)).
    ``kind="discrete"``: ζ_j takes the value ``atoms[a]`` (one number per name) with probability ``weights[a]``;
    a joint empirical law (rows of a data file, equal weights) is a discrete law with one atom per row.
    ``kind="uniform"``: one name, ζ_j uniform on [``low``, ``high``] (Gauss–Legendre quadrature).
    """

    names: tuple[str, ...]
    kind: str = "normal"
    atoms: tuple[tuple[float, ...], ...] = ()
    weights: tuple[float, ...] = ()
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("normal", "discrete", "uniform"):
            raise UserError(f"diagonal law kind must be 'normal', 'discrete' or 'uniform', got {self.kind!r}.")
        if len(set(self.names)) != len(self.names) or not self.names:
            raise UserError("a diagonal law needs distinct matrix names.")
        if self.kind == "discrete":
            if not self.atoms or len(self.atoms) != len(self.weights):
                raise UserError("a discrete diagonal law needs as many weights as atoms.")
            if any(len(a) != len(self.names) for a in self.atoms):
                raise UserError("every atom of a discrete diagonal law needs one value per diagonal matrix.")
            if not all(math.isfinite(x) for a in self.atoms for x in a):
                raise UserError("the atoms of a discrete diagonal law must be finite numbers.")
            if any(not (w >= 0) for w in self.weights) or abs(sum(self.weights) - 1) > 1e-12:
                raise UserError("the weights of a discrete diagonal law must be >= 0 and sum to 1.")
        if self.kind == "uniform":
            if len(self.names) != 1:
                raise UserError("a uniform diagonal law describes one diagonal matrix.")
            if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
                raise UserError(f"a uniform law needs finite a < b, got [{self.low:g}, {self.high:g}].")

    @property
    def exact(self) -> bool:
        """True when expectations over this law are taken symbolically (normal, or a few atoms)."""
        return self.kind == "normal" or (self.kind == "discrete" and len(self.atoms) <= EXACT_SUM_ATOMS)

    def rule(self, coarse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Nodes (M × len(names)) and weights (M) of the numerical expectation over this law.

        Discrete laws are summed exactly (``coarse`` changes nothing); uniform laws use Gauss–Legendre with
        :data:`LEGENDRE_NODES` nodes (half as many when ``coarse``, for the error estimate)."""
        if self.kind == "discrete":
            return np.asarray(self.atoms, dtype=float), np.asarray(self.weights, dtype=float)
        if self.kind == "uniform":
            x, w = np.polynomial.legendre.leggauss(LEGENDRE_NODES // 2 if coarse else LEGENDRE_NODES)
            mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
            return (mid + half * x)[:, None], w / 2
        raise UserError("a normal law has no finite rule; it is integrated by Gauss–Hermite.")

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` iid draws of ζ_j (size × len(names)); an empirical law with exactly ``size`` rows is used
        as it is (each row once, in random order)."""
        if self.kind == "normal":
            return rng.standard_normal((size, len(self.names)))
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, (size, 1))
        atoms = np.asarray(self.atoms, dtype=float)
        w = np.asarray(self.weights, dtype=float)
        if len(atoms) == size and np.allclose(w, 1.0 / size):
            return atoms[rng.permutation(size)]
        return atoms[rng.choice(len(atoms), size=size, p=w / w.sum())]


@dataclass(frozen=True)
class DiagonalFunction:
    """A diagonal matrix that is a function of other diagonal matrices with the same index j:
    diag(f(ζ_{j,A}, ζ_{j,B}, …)); ``expr`` is written in the symbols :func:`zeta_symbol` of those matrices.
    (``DiagonalFunction("B", zeta_symbol("A"))`` makes B the same matrix as A.)"""

    name: str
    expr: sp.Expr


#: Discrete laws with at most this many atoms are summed symbolically; larger ones (e.g. a data file) numerically.
EXACT_SUM_ATOMS = 16
#: Gauss–Legendre nodes for continuous (uniform) laws.
LEGENDRE_NODES = 96
#: Rational functions with more operations or symbols than these are cancelled in the ζ's only (a full
#: multivariate gcd of large cofactors can take minutes).
CANCEL_OPS = 400
CANCEL_SYMBOLS = 12


def _entry_index(u: sp.Symbol) -> tuple[int, int]:
    """(i, j) of an unknown named ``g_i_j`` (an entry of the operator-valued resolvent)."""
    i, j = (int(part) for part in str(u)[2:].split("_"))
    return i, j


def zeta_symbol(name: str) -> sp.Symbol:
    """The scalar ζ standing for the diagonal entries of the diagonal matrix ``name``."""
    return sp.Symbol(f"zeta_{name}", real=True)


# ======================================================================================= special functions
class Erfcx(sp.Function):
    """The scaled complementary error function erfcx(x) = exp(x²) erfc(x)."""

    nargs = 1

    def _eval_rewrite_as_erfc(self, x: sp.Expr, **kwargs: Any) -> sp.Expr:
        return sp.exp(x**2) * sp.erfc(x)

    def _latex(self, printer: Any) -> str:
        return r"\operatorname{erfcx}\left(%s\right)" % printer._print(self.args[0])


class ScaledExpint(sp.Function):
    """e^x E_ν(x) = e^x ∫₁^∞ e^{−xt} t^{−ν} dt = U(1, 2 − ν, x) (Tricomi's confluent hypergeometric U)."""

    nargs = 2

    def _eval_rewrite_as_expint(self, nu: sp.Expr, x: sp.Expr, **kwargs: Any) -> sp.Expr:
        return sp.exp(x) * sp.expint(nu, x)

    def _latex(self, printer: Any) -> str:
        nu, x = (printer._print(a) for a in self.args)
        return r"e^{%s} E_{%s}\left(%s\right)" % (x, nu, x)


class GaussExpectation(sp.Function):
    """Unevaluated E_ζ[h(ζ)] over iid standard normal ζ = args[1:] (integrated by Gauss–Hermite)."""

    def _latex(self, printer: Any) -> str:
        zs = ",".join(printer._print(z) for z in self.args[1:])
        return r"\mathbb{E}_{%s}\left[%s\right]" % (zs, printer._print(self.args[0]))

    def _sympystr(self, printer: Any) -> str:
        zs = ", ".join(printer._print(z) for z in self.args[1:])
        return f"E[{printer._print(self.args[0])} | {zs} ~ N(0,1)]"


class LawExpectation(sp.Function):
    """Unevaluated E_ζ[h(ζ)] over the laws of ζ = args[1:], taken numerically: exact sums over the atoms of
    large discrete laws (data files), Gauss–Legendre for uniform laws, Gauss–Hermite for normal coordinates
    that appear in the same integrand (tensor product over independent laws)."""

    def _latex(self, printer: Any) -> str:
        zs = ",".join(printer._print(z) for z in self.args[1:])
        return r"\mathbb{E}_{%s}\left[%s\right]" % (zs, printer._print(self.args[0]))

    def _sympystr(self, printer: Any) -> str:
        zs = ", ".join(printer._print(z) for z in self.args[1:])
        return f"E[{printer._print(self.args[0])} | {zs} ~ law]"


def _scaled_expint_asymptotic(nu: float, x: np.ndarray) -> np.ndarray:
    """e^x E_ν(x) ~ (1/x) Σ_k (−1)^k (ν)_k x^{−k} for |x| ≥ 60 (25 terms: relative error below 1e-15)."""
    term = np.ones_like(x)
    total = np.ones_like(x)
    for k in range(25):
        term = -term * (nu + k) / x
        total = total + term
    return total / x


def scaled_expint(nu: float, x: Any) -> Any:
    """e^x E_ν(x) for arrays (real or complex, principal branch), ν a non-negative half-integer.

    ν = ½: √(π/x) erfcx(√x); ν = 1: e^x E₁(x) (SciPy's complex exp1); upward recursion
    e^x E_{ν+1}(x) = (1 − x e^x E_ν(x))/ν; the asymptotic series for |x| ≥ 60. Real x ≤ 0 gives nan (the
    solver must not go there); other ν fall back to mpmath element by element."""
    x = np.asarray(x)
    real = not np.iscomplexobj(x)
    xc = x.astype(complex)
    two_nu = 2 * float(nu)
    if two_nu != round(two_nu) or nu <= 0 or nu > 12:
        f = np.frompyfunc(lambda t: complex(mpmath.expint(float(nu), t) * mpmath.exp(t)), 1, 1)
        out = f(xc).astype(complex)
    else:
        big = np.abs(xc) >= 60
        small = np.where(big, 1.0, xc)
        with np.errstate(all="ignore"):
            if round(two_nu) % 2:  # half-integer: start at ν = 1/2
                r = np.sqrt(small)
                f = np.sqrt(np.pi) / r * scipy.special.erfcx(r)
                start = 0.5
            else:
                f = np.exp(small) * scipy.special.exp1(small)
                start = 1.0
            v = start
            while v < nu - 1e-12:
                f = (1 - small * f) / v
                v += 1
            out = np.where(big, _scaled_expint_asymptotic(float(nu), np.where(big, xc, 60.0)), f) if big.any() else f
    if real:
        with np.errstate(invalid="ignore"):
            return np.where(x > 0, out.real, np.nan) if out.ndim else (float(out.real) if x > 0 else math.nan)
    return out if out.ndim else complex(out)


def _erfcx(x: Any) -> Any:
    return scipy.special.erfcx(x)


_FLOAT_FUNCS = {"Erfcx": _erfcx, "ScaledExpint": scaled_expint}
_MP_FUNCS = {
    "Erfcx": lambda x: mpmath.exp(x**2) * mpmath.erfc(x),
    "ScaledExpint": lambda nu, x: mpmath.expint(nu, x) * mpmath.exp(x),
}


# ======================================================================================= expectations
def _double_factorial_odd(n: int) -> int:
    """(n − 1)!! for even n ≥ 0, i.e. E[ξⁿ] for ξ ~ N(0, 1)."""
    out = 1
    for t in range(n - 1, 0, -2):
        out *= t
    return out


def _chi2_moment(m: int, i: int) -> sp.Expr:
    """E[(χ²_m)^i] = Π_{t<i} (m + 2t)."""
    out = sp.S.One
    for t in range(i):
        out *= m + 2 * t
    return out


def _inverse_chi2_shift(m: int, beta: sp.Expr) -> sp.Expr:
    """E[1/(β + χ²_m)] in closed form (see the module docstring)."""
    if m == 1:
        return sp.sqrt(sp.pi / (2 * beta)) * Erfcx(sp.sqrt(beta / 2))
    return ScaledExpint(sp.Rational(m, 2), beta / 2) / 2


def normal_expectation(h: sp.Expr, zetas: Sequence[sp.Symbol]) -> sp.Expr | None:
    """Closed-form E[h(ζ)] for iid N(0,1) coordinates ``zetas``, or ``None`` when no closed form applies.

    Handled: polynomials (Gaussian moments), and P(ζ)/(A + B Σ_{l∈S} ζ_l²) with one common B.
    """
    zs = [z for z in zetas if z in h.free_symbols]
    if not zs:
        return h
    if not h.is_rational_function(*zs):
        return None
    together = sp.together(h)
    small = len(together.free_symbols) <= CANCEL_SYMBOLS + len(zs) and sp.count_ops(together) <= CANCEL_OPS
    num, den = sp.fraction(sp.cancel(together) if small else sp.cancel(together, *zs))
    P = sp.Poly(num, *zs)
    Q = sp.Poly(den, *zs)

    def moment(monom: Sequence[int]) -> sp.Expr:
        if any(e % 2 for e in monom):
            return sp.S.Zero
        return sp.Integer(math.prod(_double_factorial_odd(e) for e in monom))

    if Q.total_degree() == 0:
        q0 = Q.as_expr()
        return sp.Add(*[c * moment(mon) for mon, c in P.terms()]) / q0
    if Q.total_degree() != 2:
        return None
    nz = len(zs)
    A = sp.S.Zero
    Bs: dict[int, sp.Expr] = {}
    for mon, c in Q.terms():
        if sum(mon) == 0:
            A = c
        elif sum(mon) == 2 and max(mon) == 2:
            Bs[mon.index(2)] = c
        else:
            return None  # linear or cross terms
    S = sorted(Bs)
    B = Bs[S[0]]
    if any(sp.cancel(Bs[l] - B) != 0 for l in S[1:]):
        return None
    m = len(S)
    beta = A / B
    base = _inverse_chi2_shift(m, beta)
    total = sp.S.Zero
    for mon, c in P.terms():
        if any(e % 2 for e in mon):
            continue
        rest = math.prod(_double_factorial_odd(mon[l]) for l in range(nz) if l not in S)
        aS = [mon[l] for l in S]
        j = sum(aS) // 2
        theta = sp.Rational(math.prod(_double_factorial_odd(e) for e in aS), 1) / _chi2_moment(m, j)
        radial = sp.Add(*[(-beta) ** i * _chi2_moment(m, j - 1 - i) for i in range(j)]) + (-beta) ** j * base
        total += c * rest * theta * radial / B
    return total


def expectation(
    h: sp.Expr,
    normal: Sequence[sp.Symbol],
    discrete: Sequence[tuple[tuple[sp.Symbol, ...], DiagonalLaw]],
    numeric: Iterable[sp.Symbol] = (),
) -> sp.Expr:
    """E_ζ[h]: exact sums over small discrete laws, closed forms over normal coordinates when they exist,
    else an unevaluated :class:`GaussExpectation` (numerical Gauss–Hermite); a term that depends on a
    coordinate in ``numeric`` (large discrete and continuous laws) becomes an unevaluated
    :class:`LawExpectation` (exact numerical sums / quadrature)."""
    numeric = set(numeric)
    terms = [(sp.S.One, h)]
    for syms, law in discrete:
        terms = [
            (w0 * sp.nsimplify(w), t.xreplace(dict(zip(syms, map(sp.nsimplify, atom)))))
            for w0, t in terms
            for atom, w in zip(law.atoms, law.weights)
        ]
    out = sp.S.Zero
    for w, t in terms:
        zs = [z for z in normal if z in t.free_symbols]
        zn = sorted((z for z in numeric if z in t.free_symbols), key=str)
        if zn:
            out += w * LawExpectation(t, *zn, *zs)
            continue
        if not zs:
            out += w * t
            continue
        closed = normal_expectation(t, zs)
        out += w * (closed if closed is not None else GaussExpectation(sp.cancel(t), *zs))
    return out


# ======================================================================================= the system
@dataclass
class OVSolution:
    """Numerical solution of an :class:`OVSystem`."""

    unknowns: dict[str, float | complex]
    outputs: dict[str, float | complex]
    residual: float
    iterations: int
    method: str
    quadrature_error: float = 0.0


@dataclass
class OVSystem:
    """Reduced fixed-point system g = Φ(g) of a pencil, and the normalised traces of its outputs.

    ``equations`` maps every remaining unknown to its right-hand side; ``outputs`` maps each output name
    to (1/m) tr(uᵀ G v) as a function of the unknowns; ``members`` lists, for each unknown, the block
    traces g_{kl} it stands for; ``zeros`` the block traces proven to vanish.
    """

    pencil: Pencil
    balanced: Pencil
    exponents: tuple[sp.Rational, ...]
    reference: sp.Expr
    unknowns: tuple[sp.Symbol, ...]
    equations: dict[sp.Symbol, sp.Expr]
    outputs: dict[str, sp.Expr]
    members: dict[sp.Symbol, tuple[sp.Symbol, ...]]
    zeros: tuple[sp.Symbol, ...]
    eta: dict[tuple[int, int], sp.Expr]
    class_matrices: dict[str, sp.Matrix]
    parameters: tuple[sp.Symbol, ...]
    constants: dict[sp.Symbol, sp.Expr]
    zeta_laws: dict[str, tuple[DiagonalLaw, int]] = field(default_factory=dict)
    _compiled: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------------------- printing
    def to_text(self) -> str:
        lines = [
            f"operator-valued fixed point: {len(self.unknowns)} unknowns "
            f"(from {sum(len(v) for v in self.members.values()) + len(self.zeros)} block traces, "
            f"{len(self.zeros)} vanish, {len(self.constants)} constant)"
        ]
        lines.append(
            "block scalings: " + ", ".join(f"s{i} = {sp.sstr(self.reference**e)}" for i, e in enumerate(self.exponents))
        )
        for name, M in self.class_matrices.items():
            lines.append(f"Lambda - eta(G) on blocks of size {name}: {sp.sstr(M.tolist())}")
        for u in self.unknowns:
            same = ", ".join(sp.sstr(m) for m in self.members[u])
            lines.append(f"  {sp.sstr(u)} = {sp.sstr(self.equations[u])}    [{same}]")
        for u, val in self.constants.items():
            same = ", ".join(sp.sstr(m) for m in self.members[u])
            lines.append(f"  {sp.sstr(u)} = {sp.sstr(val)} (constant)    [{same}]")
        if self.zeros:
            lines.append("  vanishing: " + ", ".join(sp.sstr(z) for z in self.zeros))
        for name, expr in self.outputs.items():
            lines.append(f"  tr({name})/m = {sp.sstr(expr)}")
        return "\n".join(lines)

    def to_latex(self) -> str:
        lines = [r"\begin{aligned}"]
        for u in self.unknowns:
            lines.append(f"{sp.latex(u)} &= {sp.latex(self.equations[u])} \\\\")
        for name, expr in self.outputs.items():
            lines.append(r"\tfrac{1}{m}\operatorname{tr}\mathrm{%s} &= %s \\" % (name, sp.latex(expr)))
        lines.append(r"\end{aligned}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unknowns": [str(u) for u in self.unknowns],
            "equations": {str(u): sp.sstr(self.equations[u]) for u in self.unknowns},
            "members": {str(u): [str(m) for m in self.members[u]] for u in self.unknowns},
            "zeros": [str(z) for z in self.zeros],
            "constants": {str(u): sp.sstr(v) for u, v in self.constants.items()},
            "outputs": {k: sp.sstr(v) for k, v in self.outputs.items()},
            "parameters": [str(p) for p in self.parameters],
            "block_exponents": [str(e) for e in self.exponents],
            "reference_dimension": str(self.reference),
        }

    # ------------------------------------------------------------------------------- numerics
    def _compile(self) -> dict[str, Any]:
        if self._compiled:
            return self._compiled
        args = list(self.unknowns) + list(self.parameters)
        quad: list[tuple[sp.Symbol, Callable[..., Any], tuple[sp.Symbol, ...]]] = []
        cache: dict[sp.Expr, sp.Symbol] = {}

        def strip(expr: sp.Expr) -> sp.Expr:
            reps = {}
            for node in expr.atoms(GaussExpectation, LawExpectation):
                if node not in cache:
                    sym = sp.Dummy(f"quad{len(cache)}")
                    cache[node] = sym
                    zs = tuple(node.args[1:])
                    f = sp.lambdify(list(zs) + args, node.args[0], modules=[_FLOAT_FUNCS, "numpy"])
                    quad.append((sym, f, zs))
                reps[node] = cache[node]
            return expr.xreplace(reps)

        rhs = [strip(self.equations[u]) for u in self.unknowns]
        outs = [strip(e) for e in self.outputs.values()]
        qsyms = [q[0] for q in quad]
        self._compiled = {
            "quad": quad,
            "rules": {},
            "phi_float": sp.lambdify(args + qsyms, rhs, modules=[_FLOAT_FUNCS, "numpy"], cse=True),
            "out_float": sp.lambdify(args + qsyms, outs, modules=[_FLOAT_FUNCS, "numpy"], cse=True),
            "phi_mp": sp.lambdify(args + qsyms, rhs, modules=[_MP_FUNCS, "mpmath"]),
            "out_mp": sp.lambdify(args + qsyms, outs, modules=[_MP_FUNCS, "mpmath"]),
        }
        return self._compiled

    def _rule(self, zs: tuple[sp.Symbol, ...], coarse: bool) -> tuple[list[np.ndarray], np.ndarray]:
        """Nodes (one array per coordinate of ``zs``) and weights of the expectation over their laws:
        tensor Gauss–Hermite over normal coordinates (n = 120, 60, 28, 14 per axis in 1, 2, 3, ≥ 4
        dimensions; half as many when ``coarse``) times the rule of each other law (atoms, Gauss–Legendre)."""
        key = (zs, coarse)
        rules = self._compile()["rules"]
        if key in rules:
            return rules[key]
        normal: list[int] = []
        groups: dict[int, tuple[DiagonalLaw, list[int], list[int]]] = {}
        for pos, z in enumerate(zs):
            law, idx = self.zeta_laws.get(str(z), (None, 0))
            if law is None or law.kind == "normal":
                normal.append(pos)
            else:
                groups.setdefault(id(law), (law, [], []))
                groups[id(law)][1].append(pos)
                groups[id(law)][2].append(idx)
        factors: list[tuple[list[int], np.ndarray, np.ndarray]] = []
        if normal:
            n = {1: 120, 2: 60, 3: 28}.get(len(normal), 14)
            x, w = np.polynomial.hermite_e.hermegauss(n // 2 if coarse else n)
            w = w / math.sqrt(2 * math.pi)
            grids = np.meshgrid(*([x] * len(normal)), indexing="ij")
            wgrids = np.meshgrid(*([w] * len(normal)), indexing="ij")
            factors.append(
                (normal, np.stack([g.ravel() for g in grids], axis=1), np.prod([g.ravel() for g in wgrids], axis=0))
            )
        for law, positions, idxs in groups.values():
            nodes, w = law.rule(coarse)
            factors.append((positions, nodes[:, idxs], w))
        coords: list[np.ndarray] = [np.zeros(1)] * len(zs)
        weights = np.ones(1)
        for positions, nodes, w in factors:
            m_old, m_new = len(weights), len(w)
            coords = [np.repeat(c, m_new) if len(c) == m_old else c for c in coords]
            for col, pos in enumerate(positions):
                coords[pos] = np.tile(nodes[:, col], m_old)
            weights = np.repeat(weights, m_new) * np.tile(w, m_old)
        rules[key] = (coords, weights)
        return coords, weights

    @staticmethod
    def _integrate(
        f: Callable[..., Any], coords: Sequence[np.ndarray], weights: np.ndarray, vals: Sequence[np.ndarray], size: int
    ) -> np.ndarray:
        """Σ_a w_a f(nodes_a, vals) for ``size`` points at once (chunked so that nodes × points stays small)."""
        chunk = max(1, 2**21 // max(size, 1))
        total: Any = 0
        for start in range(0, len(weights), chunk):
            sl = slice(start, start + chunk)
            res = f(*[c[sl, None] for c in coords], *[v[None, :] for v in vals])
            res = np.broadcast_to(np.asarray(res), (len(weights[sl]), size))
            total = total + weights[sl] @ res
        return np.broadcast_to(np.asarray(total), (size,))

    def expectations(self, vals: Sequence[np.ndarray], with_error: bool = False) -> tuple[list[np.ndarray], float]:
        """Values of every numerical expectation of the system at ``vals`` (unknowns then parameters, each an
        array of P points) and, with ``with_error``, the largest |Q_n − Q_{n/2}| (an error estimate)."""
        comp = self._compile()
        size = len(vals[0]) if vals else 1
        out, err = [], 0.0
        with np.errstate(all="ignore"):
            for _, f, zs in comp["quad"]:
                coords, w = self._rule(zs, False)
                fine = self._integrate(f, coords, w, vals, size)
                out.append(fine)
                if with_error:
                    coords, w = self._rule(zs, True)
                    coarse = self._integrate(f, coords, w, vals, size)
                    err = max(err, float(np.max(np.abs(fine - coarse))))
        return out, err

    def _quad_values(self, vals: Sequence[Any], with_error: bool = False) -> tuple[list[Any], float]:
        arrays = [np.atleast_1d(np.asarray(v)) for v in vals]
        q, err = self.expectations(arrays, with_error)
        return [complex(x[0]) if np.iscomplexobj(x) else float(x[0]) for x in q], err

    def _params_array(
        self, values: Mapping[str | sp.Symbol, Any], size: int | None = None
    ) -> tuple[list[np.ndarray], int]:
        given = {str(k): v for k, v in values.items()}
        missing = [str(p) for p in self.parameters if str(p) not in given]
        if missing:
            raise UserError(f"missing parameter values for {', '.join(missing)}; pass them as name=value.")
        arrays = [np.atleast_1d(np.asarray(given[str(p)])) for p in self.parameters]
        size = size or max([len(a) for a in arrays], default=1)
        out = []
        for a in arrays:
            if np.iscomplexobj(a) and not np.any(a.imag):
                a = a.real
            out.append(np.broadcast_to(a.astype(complex if np.iscomplexobj(a) else float), (size,)).copy())
        return out, size

    def phi(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """Φ at P points: ``x`` (unknowns × P), ``params`` one array of P values per parameter."""
        comp = self._compile()
        size = x.shape[1]
        vals = list(x) + list(params)
        q, _ = self.expectations(vals)
        with np.errstate(all="ignore"):
            out = comp["phi_float"](*vals, *q)
        return np.array([np.broadcast_to(np.asarray(v), (size,)) for v in out]).reshape(len(self.unknowns), size)

    def output_values(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """The normalised traces of every output (outputs × P) at the unknowns ``x``."""
        comp = self._compile()
        size = x.shape[1]
        vals = list(x) + list(params)
        q, _ = self.expectations(vals)
        with np.errstate(all="ignore"):
            out = comp["out_float"](*vals, *q)
        return np.array([np.broadcast_to(np.asarray(v), (size,)) for v in out]).reshape(len(self.outputs), size)

    def newton(
        self, x0: np.ndarray, params: Sequence[np.ndarray], tol: float = 1e-12, max_iter: int = 30
    ) -> tuple[np.ndarray, np.ndarray]:
        """Damped Newton on Φ(g) − g = 0 at P independent points (finite-difference Jacobian, backtracking);
        returns the unknowns and a mask of the converged points (scaled residual below ``tol``, or below 1e-9
        with a last step below 1e-10: close to a pole the residual stalls at the rounding level)."""
        n, size = x0.shape
        x = x0.astype(complex if (np.iscomplexobj(x0) or any(np.iscomplexobj(p) for p in params)) else float)
        if n == 0:
            return x, np.ones(size, bool)

        def F(y: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return self.phi(y, [p[idx] for p in params]) - y

        def norm(f: np.ndarray, y: np.ndarray) -> np.ndarray:
            r = np.max(np.abs(f) / (1 + np.abs(y)), axis=0)
            return np.where(np.isfinite(r), r, np.inf)

        every = np.arange(size)
        f = F(x, every)
        res = norm(f, x)
        moved = np.full(size, np.inf)  # relative size of the last accepted Newton step
        for _ in range(max_iter):
            idx = np.flatnonzero((res >= tol) & ~((moved < 1e-10) & (res < 1e-9)))
            if idx.size == 0:
                break
            xa, fa = x[:, idx], f[:, idx]
            # all n finite-difference columns in one vectorised evaluation (n·P points)
            h = 1e-7 * np.maximum(np.abs(xa), 1e-4)  # relative steps: unknowns near a pole are tiny or huge
            xp = np.repeat(xa[:, None, :], n, axis=1)  # (unknown, column, point)
            xp[np.arange(n), np.arange(n), :] += h
            fp = F(xp.reshape(n, n * idx.size), np.tile(idx, n)).reshape(n, n, idx.size)
            J = np.transpose((fp - fa[:, None, :]) / h[None, :, :], (2, 0, 1)).astype(x.dtype)
            J[~np.isfinite(J)] = 0
            try:
                step = np.linalg.solve(J, -fa.T[..., None])[..., 0].T
            except np.linalg.LinAlgError:
                step = np.stack([np.linalg.lstsq(J[i], -fa[:, i], rcond=None)[0] for i in range(idx.size)], axis=1)
            t = np.ones(idx.size)
            todo = np.ones(idx.size, bool)
            ra = res[idx]
            for _ in range(5):
                k = np.flatnonzero(todo)
                xn = xa[:, k] + t[k] * step[:, k]
                fn = F(xn, idx[k])
                rn = norm(fn, xn)
                ok = rn < np.maximum(ra[k], tol)
                moved[idx[k[ok]]] = np.max(np.abs(xn[:, ok] - xa[:, k[ok]]) / (1 + np.abs(xn[:, ok])), axis=0)
                x[:, idx[k[ok]]] = xn[:, ok]
                f[:, idx[k[ok]]] = fn[:, ok]
                res[idx[k[ok]]] = rn[ok]
                todo[k[ok]] = False
                t[k[~ok]] /= 2
                if not todo.any():
                    break
            if todo.all():
                break
        # converged: a small residual, or (near a pole, where the residual cannot get small in double
        # precision) Newton steps that no longer move the solution
        return x, (res < tol) | ((moved < 1e-10) & (res < 1e-9))

    def _fixed_point(self, params: Sequence[np.ndarray], size: int, max_iter: int = 400) -> np.ndarray:
        """Plain iteration g ← Φ(g) from g = 0 at P points (used where it contracts: far from the spectrum)."""
        n = len(self.unknowns)
        dtype = complex if any(np.iscomplexobj(p) for p in params) else float
        x = np.zeros((n, size), dtype=dtype)
        for start in (1e-8, 1e-4, 1.0):  # nudge the start where a closed form is singular at g = 0
            bad = ~np.all(np.isfinite(self.phi(x, params)), axis=0)
            if not bad.any():
                break
            x[:, bad] = start
        for _ in range(max_iter):
            new = self.phi(x, params)
            done = np.max(np.abs(new - x) / (1 + np.abs(x)), axis=0, initial=0) < 1e-14
            x = new
            if done.all():
                break
        return x

    def continue_from_infinity(
        self,
        params: Sequence[np.ndarray],
        x_top: np.ndarray | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Solve at P points with complex parameters on the physical branch.

        Every complex parameter moves along p(s) = p + i s·sign(Im p) (sign +1 where Im p = 0), from s = s₀ =
        10³(1 + max|p|), where g ← Φ(g) from g = 0 converges (the perturbative branch, G ≈ Λ⁻¹, continuous
        from z → i∞), down to s = 0; each rung is a Newton solve from the previous one, with the step in s
        shrunk where Newton fails or the solution jumps.  Returns the unknowns (n × P) and a converged mask.
        ``callback(done, total)`` reports progress."""
        size = len(params[0]) if params else 1
        cidx = [i for i, p in enumerate(params) if np.iscomplexobj(p)]
        sign = {i: np.where(params[i].imag < 0, -1.0, 1.0) for i in cidx}
        scale = 1 + np.max(np.abs(np.array(params)), axis=0) if params else np.ones(size)
        imag = np.min(np.array([np.abs(params[i].imag) for i in cidx]), axis=0) if cidx else np.zeros(size)
        floor = np.maximum(0.1 * imag, 1e-14 * scale)

        def at(s: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
            out = []
            for i, p in enumerate(params):
                out.append(p[idx] + 1j * s * sign[i][idx] if i in cidx else p[idx])
            return out

        s = 1e3 * scale
        x = self._fixed_point(at(s, np.arange(size)), size) if x_top is None else x_top.astype(complex)
        x, ok = self.newton(x, at(s, np.arange(size)))
        ratio = np.full(size, 0.25)
        done = np.zeros(size, bool)
        failed = ~ok
        steps = 0
        while True:
            idx = np.flatnonzero(~done & ~failed)
            if idx.size == 0:
                break
            steps += 1
            target = s[idx] * ratio[idx]
            target = np.where(target < floor[idx], 0.0, target)
            xn, conv = self.newton(x[:, idx], at(target, idx), max_iter=10)
            # a continuous step: no unknown changes by more than 3/4 of its size (growth up to ×7 per rung,
            # as near a pole of the resolvent, where unknowns grow like 1/s)
            old_x = x[:, idx]
            jump = (
                np.max(np.abs(xn - old_x) / (1 + np.abs(old_x) + np.abs(xn)), axis=0)
                if len(self.unknowns)
                else np.zeros(idx.size)
            )
            good = conv & (jump < 0.75)
            g_idx, b_idx = idx[good], idx[~good]
            x[:, g_idx] = xn[:, good]
            s[g_idx] = target[good]
            done[g_idx] = target[good] == 0
            ratio[g_idx] = np.maximum(ratio[g_idx] ** 1.5, 1e-3)
            ratio[b_idx] = np.sqrt(ratio[b_idx])
            failed[b_idx] = ratio[b_idx] > 0.9
            if callback is not None:
                callback(int(done.sum()), size)
            if steps > 5000:
                break
        return x, done

    def solve(
        self,
        values: Mapping[str | sp.Symbol, Any],
        tol: float = 1e-13,
        max_iter: int = 5000,
        damping: float = 1.0,
        herglotz: Mapping[str, int] | None = None,
    ) -> OVSolution:
        """Solve g = Φ(g) for parameter ``values`` (by name; dimensions may be given as ratios, e.g.
        p = p/d, d = 1, since every coefficient is homogeneous of degree 0 in the dimensions).

        Complex values (e.g. z = x + iη) are solved on the physical branch, continued from z → i∞
        (:meth:`continue_from_infinity`); ``herglotz`` maps output names to the sign their imaginary part
        must have (e.g. +1 for (1/N) tr (M − z)⁻¹ with Im z > 0), which is checked."""
        pv, _ = self._params_array(values, 1)
        is_complex = any(np.iscomplexobj(p) for p in pv)
        if is_complex:
            return self._solve_complex(pv, herglotz or {})
        pvals = [float(p[0]) for p in pv]
        n = len(self.unknowns)

        def phi(x: np.ndarray) -> np.ndarray:
            return self.phi(np.asarray(x, dtype=float).reshape(n, 1), pv)[:, 0].astype(float)

        def safe_phi(y: np.ndarray) -> np.ndarray:
            try:
                return phi(y)
            except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                return np.full(n, np.nan)

        # start on the perturbative branch g = 0 (G = Λ⁻¹); nudge it where a closed form is singular there
        x, fx = np.zeros(n), np.full(n, np.nan)
        method, it, omega, res = "fixed-point", 0, damping, np.inf
        with np.errstate(all="ignore"):
            for start in (0.0, 1e-8, 1e-4, 1.0):
                x = np.full(n, start)
                fx = safe_phi(x)
                if np.all(np.isfinite(fx)):
                    break
            for _ in range(1, max_iter + 1):
                r = fx - x
                new_res = float(np.max(np.abs(r) / (1 + np.abs(x)))) if n else 0.0
                if new_res > res and omega > 1 / 64:
                    omega /= 2
                res = new_res
                if not np.isfinite(res) or res < 1e-12:
                    break
                step = omega
                while True:  # shrink the step until Φ stays finite (e.g. inside the domain of sqrt)
                    y = x + step * r
                    fy = safe_phi(y)
                    if np.all(np.isfinite(fy)) or step < 1e-6:
                        break
                    step /= 2
                x, fx = y, fy
        if not (np.isfinite(res) and res < 1e-9):
            with np.errstate(all="ignore"):
                sol = scipy.optimize.root(
                    lambda y: phi(y) - y, x if np.all(np.isfinite(x)) else np.zeros(n), method="hybr", tol=1e-14
                )
                x, method = sol.x, "scipy-root"
                res = float(np.max(np.abs(phi(x) - x))) if n else 0.0
            if not np.isfinite(res) or res > 1e-6:
                raise UserError(
                    f"the fixed-point iteration did not converge (residual {res:.2e}); check the parameter values."
                )
        xm, res, outs, qerr = self._polish([mpmath.mpf(float(v)) for v in x], [mpmath.mpf(v) for v in pvals], pvals)
        return OVSolution(
            unknowns={str(u): float(v) for u, v in zip(self.unknowns, xm)},
            outputs={k: float(v) for k, v in zip(self.outputs, outs)},
            residual=res,
            iterations=it,
            method=method + "+newton",
            quadrature_error=qerr,
        )

    def _polish(self, xm: list[Any], pm: list[Any], pvals: list[Any]) -> tuple[list[Any], float, list[Any], float]:
        """Newton polishing in 30-digit mpmath arithmetic (real or complex); the numerical expectations are
        recomputed in double precision at every step."""
        comp = self._compile()
        n = len(xm)
        conv = complex if any(isinstance(v, complex) for v in pvals) else float
        mk = mpmath.mpc if conv is complex else mpmath.mpf
        with mpmath.workdps(30):
            xm = [mk(v) for v in xm]
            pm = [mk(v) for v in pm]

            def phim(y: Sequence[Any]) -> list[Any]:
                q, _ = self._quad_values([conv(v) for v in y] + pvals)
                return list(comp["phi_mp"](*y, *pm, *[mk(v) for v in q]))

            for _ in range(8):
                F = [a - b for a, b in zip(phim(xm), xm)]
                if max((abs(f) for f in F), default=0) < mpmath.mpf(10) ** -26:
                    break
                h = mpmath.mpf(10) ** -14
                J = mpmath.matrix(n, n)
                for j in range(n):
                    yj = list(xm)
                    yj[j] += h
                    Fj = [a - b for a, b in zip(phim(yj), yj)]
                    for i in range(n):
                        J[i, j] = (Fj[i] - F[i]) / h
                try:
                    dx = mpmath.lu_solve(J, mpmath.matrix(F))
                except ZeroDivisionError:
                    break
                new = [a - dx[i] for i, a in enumerate(xm)]
                Fn = [a - b for a, b in zip(phim(new), new)]
                if max((abs(f) for f in Fn), default=0) > max((abs(f) for f in F), default=0):
                    break
                xm = new
            F = [a - b for a, b in zip(phim(xm), xm)]
            res = float(max((abs(f) for f in F), default=0))
            q, qerr = self._quad_values([conv(v) for v in xm] + pvals, with_error=True)
            outs = comp["out_mp"](*xm, *pm, *[mk(v) for v in q])
        return xm, res, list(outs), qerr

    def _solve_complex(self, pv: list[np.ndarray], herglotz: Mapping[str, int]) -> OVSolution:
        x, ok = self.continue_from_infinity(pv)
        if not ok[0]:
            raise UserError(
                "the continuation from z → i∞ did not reach the requested complex parameters "
                "(no converged physical branch); move them away from the real axis."
            )
        pvals = [complex(p[0]) if np.iscomplexobj(p) else float(p[0]) for p in pv]
        xm, res, outs, qerr = self._polish([complex(v) for v in x[:, 0]], pvals, pvals)
        outputs = {k: complex(v) for k, v in zip(self.outputs, outs)}
        for name, s in herglotz.items():
            val = outputs[name]
            if s * val.imag < -1e-9 * abs(val):
                raise UserError(
                    f"the solution is not on the physical branch: Im tr({name}) = {val.imag:.3g} has the wrong sign."
                )
        return OVSolution(
            unknowns={str(u): complex(v) for u, v in zip(self.unknowns, xm)},
            outputs=outputs,
            residual=res,
            iterations=0,
            method="continuation-from-i-infinity+newton",
            quadrature_error=qerr,
        )


# ======================================================================================= derivation
def _n_degree(c: sp.Expr, dims: Iterable[sp.Symbol]) -> sp.Rational:
    """Leading power of N in c when every dimension symbol is replaced by (dimension)·N."""
    N = sp.Dummy("N", positive=True)
    pos = {d: sp.Dummy(str(d), positive=True) * N for d in dims}
    cN = sp.expand(sp.expand_power_base(sp.powsimp(sp.sympify(c).xreplace(pos), force=True), force=True))
    best = None
    for t in sp.Add.make_args(cN):
        _, e = t.as_coeff_exponent(N)
        if N in e.free_symbols or not e.is_Rational:
            raise UserError(f"cannot read the order in the dimensions of the coefficient {sp.sstr(c)}.")
        best = e if best is None or e > best else best
    return sp.Rational(best if best is not None else 0)


def _balance(pencil: Pencil, random: Mapping[str, GaussianMatrix], dims: set[sp.Symbol]) -> list[sp.Rational]:
    """Block exponents e_i with e_i − e_j = −deg(c) (constant atoms) or −½ − deg(c) − deg(v)/2 (Gaussian)."""
    edges: dict[int, list[tuple[int, sp.Rational, str]]] = {}
    for (i, j), entry in pencil.entries.items():
        for atom, coef in entry.items():
            if atom is not None and atom[0] in random:
                delta = -sp.Rational(1, 2) - _n_degree(coef, dims) - _n_degree(random[atom[0]].variance, dims) / 2
            else:
                delta = -_n_degree(coef, dims)
            what = "I" if atom is None else atom[0]
            edges.setdefault(i, []).append((j, -delta, what))  # e_j = e_i - delta
            edges.setdefault(j, []).append((i, delta, what))
    e: dict[int, sp.Rational] = {}
    for start in range(pencil.size):
        if start in e:
            continue
        e[start] = sp.S.Zero
        stack = [start]
        while stack:
            i = stack.pop()
            for j, step, what in edges.get(i, []):
                val = e[i] + step
                if j not in e:
                    e[j] = val
                    stack.append(j)
                elif e[j] != val:
                    raise UserError(
                        f"the expression is not in the proportional regime: the scaling of {what} is inconsistent "
                        "(normalise Gaussian matrices, e.g. F*Ft/n instead of F*Ft)."
                    )
    return [e[i] for i in range(pencil.size)]


def _reference_dimension(pencil: Pencil, dims: set[sp.Symbol]) -> sp.Expr:
    in_coefs = set()
    for entry in pencil.entries.values():
        for c in entry.values():
            in_coefs |= sp.sympify(c).free_symbols & dims
    if len(in_coefs) == 1:
        return next(iter(in_coefs))
    row = pencil.outputs[0].shape[0]
    syms = sp.sympify(row).free_symbols & dims
    return next(iter(sorted(syms, key=str))) if syms else sorted(dims, key=str)[0]


def _cofactor_inverse(M: sp.Matrix, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], tuple[sp.Expr, sp.Expr]]:
    """(num, den) of the entries (k, l) of M⁻¹ = adj(M)/det(M), per connected component of M's pattern.

    Determinants and minors come from one memoised Laplace expansion along the sparsest row
    (division-free, so substituting values later never meets 0/0).
    """
    n = M.rows
    nz = {(i, j): M[i, j] for i in range(n) for j in range(n) if M[i, j] != 0}
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in nz:
        parent[find(i)] = find(j)
    memo: dict[tuple[frozenset[int], frozenset[int]], sp.Expr] = {}

    def det(rows: frozenset[int], cols: frozenset[int]) -> sp.Expr:
        if not rows:
            return sp.S.One
        key = (rows, cols)
        if key in memo:
            return memo[key]
        scols = sorted(cols)
        r = min(rows, key=lambda i: sum((i, j) in nz for j in cols))
        rank_r = sorted(rows).index(r)
        total = sp.S.Zero
        for pos, j in enumerate(scols):
            if (r, j) in nz:
                minor = det(rows - {r}, cols - {j})
                if minor != 0:
                    total += (-1) ** (rank_r + pos) * nz[(r, j)] * minor
        memo[key] = total
        return total

    out = {}
    for k, l in pairs:
        if find(k) != find(l):
            out[(k, l)] = (sp.S.Zero, sp.S.One)
            continue
        comp = frozenset(i for i in range(n) if find(i) == find(k))
        sk = sorted(comp)
        sign = (-1) ** (sk.index(l) + sk.index(k))  # (M⁻¹)_{kl} = (−1)^{l+k} det M[−l, −k] / det M
        out[(k, l)] = (sign * det(comp - {l}, comp - {k}), det(comp, comp))
    return out


def _structural_reach(pencil: Pencil) -> list[set[int]]:
    """reach[k] ⊇ {l : (L⁻¹)_{kl} can be non-zero}: l reachable from k along non-zero blocks of L.

    (L⁻¹ is a polynomial in L by Cayley–Hamilton, and (L^m)_{kl} ≠ 0 needs a path k → l of length m.)
    """
    nxt: dict[int, set[int]] = {}
    for (i, j), e in pencil.entries.items():
        if e:
            nxt.setdefault(i, set()).add(j)
    out = []
    for k in range(pencil.size):
        seen, stack = {k}, [k]
        while stack:
            x = stack.pop()
            for y in nxt.get(x, ()):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        out.append(seen)
    return out


def _diagonal_values(laws: Sequence[DiagonalLaw], functions: Sequence[DiagonalFunction]) -> dict[str, sp.Expr]:
    """ζ of every diagonal matrix as an expression in the base coordinates (functions resolved, cycles refused)."""
    out: dict[str, sp.Expr] = {}
    for law in laws:
        for name in law.names:
            if name in out:
                raise UserError(f"diagonal matrix {name!r} is declared twice.")
            out[name] = zeta_symbol(name)
    pending = {}
    for f in functions:
        if f.name in out or f.name in pending:
            raise UserError(f"diagonal matrix {f.name!r} is declared twice.")
        pending[f.name] = sp.sympify(f.expr)
    by_symbol = {zeta_symbol(n): n for n in list(out) + list(pending)}
    for expr in pending.values():
        unknown = [str(z) for z in expr.free_symbols if z not in by_symbol]
        if unknown:
            raise UserError(
                f"a diagonal function refers to {', '.join(sorted(unknown))}, which is not a declared diagonal matrix."
            )
    while pending:
        ready = {n: e for n, e in pending.items() if all(by_symbol[z] in out for z in e.free_symbols)}
        if not ready:
            raise UserError("diagonal functions refer to each other in a cycle: " + ", ".join(sorted(pending)) + ".")
        for n, e in ready.items():
            out[n] = e.xreplace({zeta_symbol(m): out[m] for m in out})
            del pending[n]
    return out


#: Class id of the block traces proven to vanish during the reduction.
_ZERO_CLASS = -1


def _trace_symbol(k: int, l: int) -> sp.Symbol:
    """The unknown normalised block trace g_{kl}."""
    return sp.Symbol(f"g_{k}_{l}")


@dataclass(frozen=True)
class _Declarations:
    """The checked atoms of a pencil: Gaussian matrices, diagonal laws, ζ values and dimension symbols."""

    random: dict[str, GaussianMatrix]
    laws: list[DiagonalLaw]
    zeta_value: dict[str, sp.Expr]
    diag_law: dict[str, DiagonalLaw]
    dims: set[sp.Symbol]

    @property
    def zeta_normal(self) -> list[sp.Symbol]:
        """Base coordinates ζ with a standard normal law."""
        return [zeta_symbol(n) for n, law in self.diag_law.items() if law.kind == "normal"]

    @property
    def discrete(self) -> list[tuple[tuple[sp.Symbol, ...], DiagonalLaw]]:
        """Coordinate groups of the small discrete laws, summed exactly."""
        return [
            (tuple(zeta_symbol(n) for n in law.names), law) for law in self.laws if law.kind == "discrete" and law.exact
        ]

    @property
    def zeta_numeric(self) -> list[sp.Symbol]:
        """Base coordinates ζ whose expectations are taken numerically."""
        return [zeta_symbol(n) for n, law in self.diag_law.items() if not law.exact]

    @property
    def base_zetas(self) -> set[sp.Symbol]:
        """Every base coordinate ζ."""
        return {zeta_symbol(n) for n in self.diag_law}


def _declarations(
    pencil: Pencil, gaussians: Iterable[GaussianMatrix], diagonals: Iterable[DiagonalLaw | DiagonalFunction]
) -> _Declarations:
    """The atom declarations of ``pencil``, checked against its matrix symbols, and its dimension symbols."""
    random = {g.name: g for g in gaussians}
    items = list(diagonals)
    laws = [x for x in items if isinstance(x, DiagonalLaw)]
    functions = [x for x in items if isinstance(x, DiagonalFunction)]
    zeta_value = _diagonal_values(laws, functions)
    diag_law: dict[str, DiagonalLaw] = {}
    for law in laws:
        for name in law.names:
            diag_law[name] = law
    for name, sym in pencil.symbols.items():
        if name not in random and name not in zeta_value:
            raise UserError(f"matrix {name!r} is neither declared Gaussian nor diagonal.")
        if name in random and name in zeta_value:
            raise UserError(f"matrix {name!r} is declared both Gaussian and diagonal.")
        if name in zeta_value and sym.rows != sym.cols:
            raise UserError(f"diagonal matrix {name!r} must be square.")
        if name in random and random[name].symmetric and sym.rows != sym.cols:
            raise UserError(f"symmetric Gaussian matrix {name!r} must be square.")
    dims: set[sp.Symbol] = set()
    for s in pencil.sizes:
        dims |= sp.sympify(s).free_symbols
    for sym in pencil.symbols.values():
        dims |= sp.sympify(sym.rows).free_symbols | sp.sympify(sym.cols).free_symbols
    return _Declarations(random, laws, zeta_value, diag_law, dims)


def _rescaled(c: sp.Expr, R: sp.Expr, power: sp.Rational) -> sp.Expr:
    """c · R^power with the powers of R collected."""
    return sp.powsimp(sp.expand_power_base(sp.sympify(c) * R**power, force=True), force=True)


def _balanced(pencil: Pencil, decl: _Declarations) -> tuple[list[sp.Rational], sp.Expr, Pencil]:
    """Step 1: block exponents e_i, reference dimension R and the pencil under the similarity s_i = R^{e_i}."""
    ex = _balance(pencil, decl.random, decl.dims)
    R = _reference_dimension(pencil, decl.dims)
    bal_entries = {
        (i, j): {a: _rescaled(c, R, ex[i] - ex[j]) for a, c in e.items()} for (i, j), e in pencil.entries.items()
    }
    bal_outputs = tuple(
        type(o)(
            o.name,
            {i: _rescaled(c, R, -ex[i]) for i, c in o.u.items()},
            {j: _rescaled(c, R, ex[j]) for j, c in o.v.items()},
            o.shape,
        )
        for o in pencil.outputs
    )
    return ex, R, Pencil(pencil.sizes, bal_entries, bal_outputs, pencil.symbols)


def _covariance_map(
    pencil: Pencil, balanced: Pencil, decl: _Declarations
) -> tuple[dict[tuple[int, int], sp.Expr], dict[tuple[int, int], sp.Expr]]:
    """Step 2: the deterministic blocks Λ (ζ's substituted) and the covariance map η(G) in the block traces."""
    rand_occ: list[tuple[int, int, str, bool, sp.Expr]] = []
    lam: dict[tuple[int, int], sp.Expr] = {}
    for (i, j), e in balanced.entries.items():
        for atom, c in e.items():
            if atom is not None and atom[0] in decl.random:
                rand_occ.append((i, j, atom[0], atom[1], c))
            else:
                val = c if atom is None else c * decl.zeta_value[atom[0]]
                lam[(i, j)] = lam.get((i, j), sp.S.Zero) + val
    random = decl.random
    reach = _structural_reach(pencil)
    eta: dict[tuple[int, int], sp.Expr] = {}
    for (i, k, a, ta, ca), (l, j, b, tb, cb) in itertools.product(rand_occ, rand_occ):
        if a != b or (ta == tb and not random[a].symmetric) or l not in reach[k]:
            continue
        coef = sp.powsimp(sp.expand_power_base(ca * cb * random[a].variance * pencil.sizes[k], force=True), force=True)
        eta[(i, j)] = eta.get((i, j), sp.S.Zero) + coef * _trace_symbol(k, l)
    return lam, eta


def _needed_pairs(
    eta: Mapping[tuple[int, int], sp.Expr], balanced: Pencil, dims: set[sp.Symbol]
) -> tuple[set[tuple[int, int]], list[list[tuple[int, int, sp.Expr]]]]:
    """Block pairs (k, l) whose G entry is needed (by η or an output), and each output's (i, j, coefficient) terms."""
    needed = {
        (k, l)
        for (i, j), val in eta.items()
        for (k, l) in [
            tuple(map(int, str(sym)[2:].split("_"))) for sym in val.free_symbols if str(sym).startswith("g_")
        ]
    }
    out_pairs: list[list[tuple[int, int, sp.Expr]]] = []
    for o in balanced.outputs:
        if o.shape[0] != o.shape[1]:
            raise UserError(f"output {o.name!r} is not square, so it has no normalised trace.")
        pairs = [(i, j, cu * cv) for i, cu in o.u.items() for j, cv in o.v.items()]
        for _i, _j, c in pairs:
            if _n_degree(c, dims) != 0:
                raise UserError(f"the normalised trace of output {o.name!r} is not of order one.")
        out_pairs.append(pairs)
        needed |= {(i, j) for i, j, _ in pairs}
    return needed, out_pairs


def _class_inverses(
    pencil: Pencil,
    lam: Mapping[tuple[int, int], sp.Expr],
    eta: Mapping[tuple[int, int], sp.Expr],
    needed: set[tuple[int, int]],
) -> tuple[dict[tuple[int, int], tuple[sp.Expr, sp.Expr]], dict[str, sp.Matrix], dict[int, str]]:
    """Step 2: (num, den) of the needed entries of G = (Λ − η)⁻¹ per class, the class matrices, each block's class."""
    classes: dict[str, list[int]] = {}
    for i, s in enumerate(pencil.sizes):
        classes.setdefault(sp.srepr(s), []).append(i)
    entries: dict[tuple[int, int], tuple[sp.Expr, sp.Expr]] = {}
    class_matrices: dict[str, sp.Matrix] = {}
    class_of: dict[int, str] = {}
    for key, blocks in classes.items():
        M = sp.Matrix(
            len(blocks),
            len(blocks),
            lambda r, c: lam.get((blocks[r], blocks[c]), 0) - eta.get((blocks[r], blocks[c]), 0),
        )
        name = sp.sstr(pencil.sizes[blocks[0]])
        class_matrices[name] = M
        for b_ in blocks:
            class_of[b_] = key
        local = [(blocks.index(k), blocks.index(l)) for (k, l) in needed if k in blocks]
        for (a_, b_), val in _cofactor_inverse(M, local).items():
            entries[(blocks[a_], blocks[b_])] = val
    return entries, class_matrices, class_of


def _unknown_pairs(
    eta: Mapping[tuple[int, int], sp.Expr],
    needed: set[tuple[int, int]],
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    decl: _Declarations,
) -> tuple[list[tuple[int, int]], list[sp.Symbol]]:
    """The block pairs whose traces η involves (the unknowns), and the parameters of the G entries."""
    unknown_pairs = sorted(
        {(k, l) for (i, j), val in eta.items() for (k, l) in needed if _trace_symbol(k, l) in val.free_symbols}
    )
    unknowns_all = [_trace_symbol(k, l) for k, l in unknown_pairs]
    params = sorted(
        {s for (num, den) in entries.values() for s in (num.free_symbols | den.free_symbols)}
        - set(unknowns_all)
        - decl.base_zetas,
        key=str,
    )
    return unknown_pairs, params


class _Probe:
    """The G entries of the unknowns evaluated at a few fixed random points (ζ's and parameters)."""

    NPTS = 4

    def __init__(
        self,
        entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
        unknown_pairs: Sequence[tuple[int, int]],
        params: Sequence[sp.Symbol],
        decl: _Declarations,
        rng: np.random.Generator,
    ) -> None:
        npts = self.NPTS
        self.zeta_normal = decl.zeta_normal
        self.allz = self.zeta_normal + [z for syms, _ in decl.discrete for z in syms] + decl.zeta_numeric
        unknowns_all = [_trace_symbol(k, l) for k, l in unknown_pairs]
        arg_syms = self.allz + unknowns_all + list(params)
        ratios = [entries[pq][0] / entries[pq][1] for pq in unknown_pairs]
        self.all_values = sp.lambdify(arg_syms, ratios, modules="numpy", cse=True)
        n_normal = len(self.zeta_normal)
        self.zpts = rng.standard_normal((len(self.allz), npts))
        self.zpts[n_normal:] = rng.uniform(0.3, 1.7, (len(self.allz) - n_normal, npts))  # inside sqrt, log
        self.ppts = rng.uniform(0.5, 1.5, (len(params), npts))
        self.perms = list(itertools.permutations(range(n_normal))) if n_normal <= 5 else [tuple(range(n_normal))]

    def evaluate(self, uvals: np.ndarray, zp: np.ndarray) -> np.ndarray:
        """Values of every unknown's G entry (rows) at the npts random points (columns)."""
        with np.errstate(all="ignore"):
            vals = self.all_values(*zp, *uvals, *self.ppts)
        return np.array([np.broadcast_to(np.asarray(v, dtype=float), (self.NPTS,)) for v in vals])

    def signatures(
        self, uvals: np.ndarray, unknown_pairs: Sequence[tuple[int, int]], normal_pair: Mapping[tuple[int, int], bool]
    ) -> dict[tuple[int, int], list[np.ndarray] | None]:
        """Per unknown: None if its G entry vanishes (identically or by oddness), else its values per permutation."""
        base = self.evaluate(uvals, self.zpts)
        flipped = []
        for zi, zsym in enumerate(self.allz):
            if zsym in self.zeta_normal:
                zf = self.zpts.copy()
                zf[zi] *= -1
                flipped.append(self.evaluate(uvals, zf))
        permuted = []
        for perm in self.perms:
            zp = self.zpts.copy()
            zp[: len(self.zeta_normal)] = self.zpts[list(perm)]
            permuted.append(self.evaluate(uvals, zp))
        signature: dict[tuple[int, int], list[np.ndarray] | None] = {}
        for r, pq in enumerate(unknown_pairs):
            scale = max(1.0, float(np.max(np.abs(base[r]))))  # a non-finite value never compares equal
            if np.max(np.abs(base[r])) < 1e-11 * scale or (
                normal_pair[pq] and any(np.allclose(f[r], -base[r], rtol=1e-9, atol=1e-12 * scale) for f in flipped)
            ):
                signature[pq] = None  # identically zero, or odd in some normal ζ_l: zero expectation
            else:
                signature[pq] = [v[r] for v in permuted]
        return signature


def _same_signature(x: list[np.ndarray] | None, y: list[np.ndarray] | None) -> bool:
    """True when two signatures agree: both vanish, or y's values equal x's under some permutation."""
    if x is None or y is None:
        return x is None and y is None
    return any(np.allclose(s, y[0], rtol=1e-9, atol=1e-12) for s in x)


def _refine(
    cls: Mapping[tuple[int, int], int],
    signature: Mapping[tuple[int, int], list[np.ndarray] | None],
    unknown_pairs: Sequence[tuple[int, int]],
    class_of: Mapping[int, str],
) -> tuple[dict[tuple[int, int], int], bool]:
    """One partition refinement of the unknowns by their signatures, and whether the partition is stable."""
    new_cls: dict[tuple[int, int], int] = {}
    leaders: list[tuple[int, tuple[int, int], int]] = []  # (old class, leader pair, new id)
    for pq in unknown_pairs:
        if signature[pq] is None and cls[pq] == _ZERO_CLASS:
            new_cls[pq] = _ZERO_CLASS
            continue
        found = next(
            (
                nid
                for old, lead, nid in leaders
                if old == cls[pq]
                and class_of[lead[0]] == class_of[pq[0]]
                and _same_signature(signature[pq], signature[lead])
            ),
            None,
        )
        if found is None:
            found = len(leaders)
            leaders.append((cls[pq], pq, found))
        new_cls[pq] = found
    stable = all((cls[pq] == _ZERO_CLASS) == (new_cls[pq] == _ZERO_CLASS) for pq in unknown_pairs) and len(
        {c for c in new_cls.values() if c != _ZERO_CLASS}
    ) == len({c for c in cls.values() if c != _ZERO_CLASS})
    return new_cls, stable


def _reduction_classes(
    pencil: Pencil,
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    unknown_pairs: Sequence[tuple[int, int]],
    params: Sequence[sp.Symbol],
    class_of: Mapping[int, str],
    decl: _Declarations,
    seed: int,
) -> dict[tuple[int, int], int]:
    """Step 3: class of every unknown (:data:`_ZERO_CLASS`: vanishes) by refinement from "all unknowns zero"."""
    rng = np.random.default_rng(seed)
    probe = _Probe(entries, unknown_pairs, params, decl, rng)
    npts = probe.NPTS
    normal_pair = {pq: _class_has_normal(pq, class_of, pencil, decl.diag_law) for pq in unknown_pairs}
    cls = {pq: _ZERO_CLASS for pq in unknown_pairs}
    while True:
        ids = sorted({c for c in cls.values() if c != _ZERO_CLASS})
        cval = {c: rng.uniform(0.3, 1.3, npts) for c in ids}
        uvals = np.array([np.zeros(npts) if cls[pq] == _ZERO_CLASS else cval[cls[pq]] for pq in unknown_pairs])
        signature = probe.signatures(uvals, unknown_pairs, normal_pair)
        cls, stable = _refine(cls, signature, unknown_pairs, class_of)
        if stable:
            return cls


def _substitutions(
    unknown_pairs: Sequence[tuple[int, int]], cls: Mapping[tuple[int, int], int]
) -> tuple[dict[int, sp.Symbol], dict[sp.Symbol, list[sp.Symbol]], dict[sp.Symbol, sp.Expr], list[sp.Symbol]]:
    """Representative of each class, its members, the substitution g_{kl} → representative or 0, the zeros."""
    reps: dict[int, sp.Symbol] = {}
    members: dict[sp.Symbol, list[sp.Symbol]] = {}
    subs: dict[sp.Symbol, sp.Expr] = {}
    zeros = []
    for p in unknown_pairs:
        if cls[p] == _ZERO_CLASS:
            subs[_trace_symbol(*p)] = sp.S.Zero
            zeros.append(_trace_symbol(*p))
        else:
            rep = reps.setdefault(cls[p], _trace_symbol(*p))
            subs[_trace_symbol(*p)] = rep
            members.setdefault(rep, []).append(_trace_symbol(*p))
    return reps, members, subs, zeros


def _reduced_entry(
    entry: tuple[sp.Expr, sp.Expr], subs: Mapping[sp.Symbol, sp.Expr], base_zetas: set[sp.Symbol]
) -> sp.Expr:
    """The G entry num/den with the reduction substituted, cancelled (in the ζ's only when large)."""
    num, den = entry
    num, den = num.xreplace(subs), den.xreplace(subs)
    free = (num.free_symbols | den.free_symbols) - base_zetas
    if len(free) <= CANCEL_SYMBOLS and sp.count_ops(num) + sp.count_ops(den) <= CANCEL_OPS:
        return sp.cancel(num / den)
    # large cofactors (big pencils): a full multivariate gcd can take minutes; cancel in the ζ's only
    zs = sorted((num.free_symbols | den.free_symbols) & base_zetas, key=str)
    return sp.cancel(num / den, *zs) if zs else num / den


def _integrated(
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    subs: Mapping[sp.Symbol, sp.Expr],
    unknowns: Sequence[sp.Symbol],
    balanced: Pencil,
    out_pairs: Sequence[Sequence[tuple[int, int, sp.Expr]]],
    decl: _Declarations,
) -> tuple[dict[sp.Symbol, sp.Expr], dict[str, sp.Expr]]:
    """Step 4: right-hand sides E_ζ[G_{kl}] of the unknowns and the output traces, integrated over the ζ's."""
    zeta_normal, discrete, zeta_numeric, base_zetas = (
        decl.zeta_normal,
        decl.discrete,
        decl.zeta_numeric,
        decl.base_zetas,
    )
    equations = {
        u: expectation(_reduced_entry(entries[_entry_index(u)], subs, base_zetas), zeta_normal, discrete, zeta_numeric)
        for u in unknowns
    }
    outputs = {}
    for o, pairs in zip(balanced.outputs, out_pairs):
        h = sp.Add(*[c * _reduced_entry(entries[(i, j)], subs, base_zetas) for i, j, c in pairs])
        outputs[o.name] = expectation(sp.cancel(h), zeta_normal, discrete, zeta_numeric)
    return equations, outputs


def _pruned(
    equations: dict[sp.Symbol, sp.Expr], outputs: dict[str, sp.Expr]
) -> tuple[dict[sp.Symbol, sp.Expr], dict[str, sp.Expr], dict[sp.Symbol, sp.Expr]]:
    """Equations and outputs without the unknowns whose equation involves no unknown (e.g. g = 1); those constants."""
    constants: dict[sp.Symbol, sp.Expr] = {}
    while True:
        fixed = {u: rhs for u, rhs in equations.items() if not (rhs.free_symbols & set(equations))}
        if not fixed:
            break
        constants.update(fixed)
        equations = {
            u: sp.cancel(rhs.xreplace(fixed)) if not rhs.has(GaussExpectation, LawExpectation) else rhs.xreplace(fixed)
            for u, rhs in equations.items()
            if u not in fixed
        }
    outputs = {k: v.xreplace(constants) for k, v in outputs.items()}
    return equations, outputs, constants


def derive_system(
    pencil: Pencil,
    gaussians: Iterable[GaussianMatrix],
    diagonals: Iterable[DiagonalLaw | DiagonalFunction] = (),
    seed: int = 0,
) -> OVSystem:
    """Derive the reduced matrix-Dyson fixed point of ``pencil`` (see the module docstring).

    Every matrix symbol of the pencil must be declared either in ``gaussians`` or in ``diagonals``
    (a :class:`DiagonalLaw`, or a :class:`DiagonalFunction` of other diagonals with the same index).
    ``seed`` fixes the random points of the numerical identity tests.
    """
    decl = _declarations(pencil, gaussians, diagonals)
    ex, R, balanced = _balanced(pencil, decl)
    lam, eta = _covariance_map(pencil, balanced, decl)
    needed, out_pairs = _needed_pairs(eta, balanced, decl.dims)
    entries, class_matrices, class_of = _class_inverses(pencil, lam, eta, needed)
    unknown_pairs, params = _unknown_pairs(eta, needed, entries, decl)
    cls = _reduction_classes(pencil, entries, unknown_pairs, params, class_of, decl, seed)
    reps, members, subs, zeros = _substitutions(unknown_pairs, cls)
    equations, outputs = _integrated(entries, subs, tuple(reps[c] for c in sorted(reps)), balanced, out_pairs, decl)
    equations, outputs, constants = _pruned(equations, outputs)
    unknowns = tuple(reps[c] for c in sorted(reps) if reps[c] in equations)
    free = set()
    for expr in list(equations.values()) + list(outputs.values()):
        free |= expr.free_symbols
    parameters = tuple(sorted(free - set(unknowns) - decl.base_zetas, key=str))
    zeta_laws = {str(zeta_symbol(n)): (law, law.names.index(n)) for n, law in decl.diag_law.items()}
    return OVSystem(
        pencil,
        balanced,
        tuple(ex),
        R,
        unknowns,
        equations,
        outputs,
        {u: tuple(m) for u, m in members.items()},
        tuple(zeros),
        eta,
        class_matrices,
        parameters,
        constants,
        zeta_laws,
    )


def _class_has_normal(
    pair: tuple[int, int], class_of: Mapping[int, str], pencil: Pencil, diag_law: Mapping[str, DiagonalLaw]
) -> bool:
    """True when block pair ``pair`` lives in a class whose size is that of a normal diagonal matrix."""
    key = class_of[pair[0]]
    return any(
        law.kind == "normal" and sp.srepr(pencil.symbols[n].rows) == key
        for n, law in diag_law.items()
        if n in pencil.symbols
    )


# ======================================================================================= Sobolev traces
def sobolev_expressions(k: int) -> tuple[dict[str, sp.MatrixExpr], list[GaussianMatrix], list[DiagonalLaw]]:
    """The four first-order Sobolev trace functionals of THEORY.md §3 as matrix expressions.

    Q = (aI + bW + c Σ_l D_l W D_l + e Σ_l D_l²)⁻¹, W = ΘᵀΘ/d, Θ ∈ ℝ^{d×p} iid N(0,1), D_l = diag(ζ_{·l}),
    ζ_j ~ N(0, I_k); outputs Q, QW, Q D₁WD₁ and Q D₁².
    """
    if k < 1:
        raise UserError(f"k must be a positive integer, got {k}.")
    p, d = sp.symbols("p d", positive=True, integer=True)
    a, b, c, e = sp.symbols("a b c e", positive=True)
    Th = MatrixSymbol("Theta", d, p)
    Ds = [MatrixSymbol(f"D{l + 1}", p, p) for l in range(k)]
    W = Th.T * Th / d
    inner = a * Identity(p) + b * W
    for D in Ds:
        inner = inner + c * D * W * D + e * D * D
    Q = Inverse(inner)
    exprs = {"Q": Q, "QW": Q * W, "QD1WD1": Q * Ds[0] * W * Ds[0], "QD1sq": Q * Ds[0] * Ds[0]}
    return exprs, [GaussianMatrix("Theta")], [DiagonalLaw(tuple(D.name for D in Ds), "normal")]


@lru_cache(maxsize=8)
def sobolev_system(k: int) -> OVSystem:
    """The derived (and cached) fixed-point system of the Sobolev trace functionals for a given k."""
    exprs, gauss, diags = sobolev_expressions(k)
    return derive_system(linearize(exprs), gauss, diags)


def sobolev_traces(k: int, p_over_d: float, a: float, b: float, c: float, e: float) -> dict[str, float]:
    """(1/p)tr Q, (1/p)tr(QW), (1/p)tr(Q D₁WD₁), (1/p)tr(Q D₁²) from the pencil/operator-valued route.

    Keys: ``trQ``, ``trQW``, ``trQD1WD1``, ``trQD1sq`` (all normalised by p).
    """
    system = sobolev_system(int(k))
    sol = system.solve({"a": a, "b": b, "c": c, "e": e, "p": p_over_d, "d": 1.0})
    names = {"trQ": "Q", "trQW": "QW", "trQD1WD1": "QD1WD1", "trQD1sq": "QD1sq"}
    return {key: float(sol.outputs[name].real) for key, name in names.items()}
