"""``sobolev-rf derive``: print the symbolically derived fixed point and error formulas for k directions."""

from __future__ import annotations

import argparse

from ...derive.params import MAX_K
from ...derive.values import integer
from .args import BRANCH_HELP, BRANCHES, tau_value

DESCRIPTION = """\
Derives with SymPy, for k gradient directions, the asymptotic fixed point of Sobolev (--tau > 0, tau a
symbol of the system) or L2 (--tau 0) training in the unknowns V_0, V_1 (tau > 0) and Omega_0, Omega_1
(k >= 1), written as residuals u - G(u) = 0, and the outputs eps_L2, eps_H1, eps_grad, train_loss,
train_error_L2, m, q_s, q_w (and the order parameters M_0, M_l, S_0, S_l of one direction l) as
expressions in the unknowns, the Hermite coefficients (kappa*, mu*, c_sigma, c_phi), lam, psi = p/d,
n_d = n/d, Delta_f, Delta_g, tau, the mean square alignment varpi2 = |varpi|^2/k and the alignment
varpi_l of direction l, through named intermediate definitions. The system has the same size for
every k >= 1: k enters as a number. H_s(y) = E_(t~Gamma(s,1)) [1/(t + y)] with s = k/2 and
H2_s(y) = E[1/(t + y)^2] are the special functions.

--branch interpolating / underparameterised give the two branches of the limit lam -> 0+ (either side
of p = (1 + k) n for tau > 0, p = n for tau = 0) in the scaled unknowns alpha, beta_1, Omega_0, Omega_1.

examples:
  sobolev-rf derive --k 1
  sobolev-rf derive --k 1 --branch interpolating
  sobolev-rf derive --k 3 --tau 0 --format latex
  sobolev-rf derive --k 2 --format json
  sobolev-rf derive --k 1000
"""


def run(args: argparse.Namespace) -> int:
    """Derive the system and print it in the requested format."""
    from ...derive.saddle import derive_system

    system = derive_system(integer("--k", args.k, 0, MAX_K), tau_value(args.tau), args.branch)
    if args.format == "latex":
        print(system.to_latex())
    elif args.format == "json":
        print(system.to_json())
    else:
        print(system.to_text())
        print(f"fingerprint: {system.fingerprint()}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``derive``."""
    p = subparsers.add_parser("derive", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", required=True, metavar="K", help=f"number of gradient directions, 0 to {MAX_K}")
    p.add_argument(
        "--tau",
        default="1",
        metavar="TAU",
        help="> 0: Sobolev training (tau a symbol), 0: plain L2 training (default: %(default)s)",
    )
    p.add_argument("--branch", choices=BRANCHES, default="ridge", help=BRANCH_HELP)
    p.add_argument(
        "--format", choices=("text", "latex", "json"), default="text", help="output format (default: %(default)s)"
    )
    p.set_defaults(func=run)
