"""``sobolev-rf derive``: print the symbolically derived fixed point and error formulas for k directions."""
from __future__ import annotations

import argparse

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.saddle import BRANCHES, derive_system

#: Largest k the command derives (the derivation is generic; this bounds the output size).
MAX_K = 8

DESCRIPTION = """\
Derives with SymPy, for k gradient directions, the asymptotic fixed point of Sobolev (--tau 1) or L2
(--tau 0) training in the unknowns V_0, V_1 (tau = 1) and Omega_0, Omega_1 (k >= 1), written as
residuals u - G(u) = 0, and the outputs eps_L2, eps_H1, eps_grad, train_loss, train_error_L2, m, q_s,
q_w as expressions in the unknowns, the Hermite coefficients (kappa*, mu*, c_sigma, c_phi), lam,
psi = p/d, phi = n/d, Delta_f, Delta_g and the alignment varpi_1..varpi_k, through named intermediate
definitions. H_s(y) = E_(t~Gamma(s,1)) [1/(t + y)] with s = k/2 is the one special function.

--branch interpolating / underparameterised give the two branches of the limit lam -> 0+ (either side
of p = (1 + tau k) n) in the scaled unknowns alpha, beta_1, Omega_0, Omega_1.

examples:
  sobolev-rf derive --k 1
  sobolev-rf derive --k 1 --branch interpolating
  sobolev-rf derive --k 3 --tau 0 --format latex
  sobolev-rf derive --k 2 --format json
"""


#: Help text of ``--branch`` (shared with ``codegen``).
BRANCH_HELP = ("ridge: lam > 0 (default); interpolating / underparameterised: the limit lam -> 0+ for "
               "p > (1 + tau k) n / p < (1 + tau k) n")


def _k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"--k must be an integer from 0 to {MAX_K}, got {text!r}.") from None
    if not 0 <= value <= MAX_K:
        raise UserError(f"--k must be an integer from 0 to {MAX_K}, got {text!r}.")
    return value


def run(args: argparse.Namespace) -> int:
    """Derive the system and print it in the requested format."""
    system = derive_system(_k(args.k), int(args.tau), args.branch)
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
    p = subparsers.add_parser("derive", help="symbolic fixed point and error formulas for k directions",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", required=True, metavar="K", help=f"number of gradient directions, 0 to {MAX_K}")
    p.add_argument("--tau", choices=("0", "1"), default="1",
                   help="1: Sobolev training, 0: plain L2 training (default: %(default)s)")
    p.add_argument("--branch", choices=BRANCHES, default="ridge", help=BRANCH_HELP)
    p.add_argument("--format", choices=("text", "latex", "json"), default="text",
                   help="output format (default: %(default)s)")
    p.set_defaults(func=run)
