"""``sobolev-rf simulate``: the exact finite-size simulation of one model point
(:mod:`sobolev_rf.numeric.simulation.exact`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ...derive.errors import UserError
from ...derive.values import integer
from ..simulation.exact import SUBSPACES, simulate
from .args import add_model_arguments, add_step_arguments, params_from_args

DESCRIPTION = """\
Draws Θ, V, θ₀ (Vᵀθ₀ = ϖ exactly, ‖θ₀‖ = 1) and n = round(n_over_d·d) samples, trains the p =
round(p_over_d·d) output weights by the closed-form minimiser of the Sobolev loss (--tau T, any real
T >= 0: the k·n gradient rows and their labels enter the ridge design scaled by √T, so the gradient-label
noise Δ_g enters with weight T; T = 0 is plain L2 training), and reports on a
fresh noiseless test set eps_L2, eps_H1, eps_grad, the training loss and L2 error, and the order
parameters m, q_s, q_w, s_a, s_l, m_l, q_s_l, q_w_l and the realised alignment ϖ = Vᵀθ₀: mean and
standard error over seeds.

--subspace informed (OUTSIDE the d → ∞ theory) draws V instead from data, as active-subspace and
derivative-informed methods do: v_l = √d·u_l with u_l the dominant eigenvectors of the gradient
covariance estimated from --pilot M (default d) noisy full teacher gradients (noise variance
--noise-g). Then ϖ₁ ≈ √d grows with d; ϖ is an output of the draw, so --alignment is refused.
"""


def add_parser(subparsers: Any) -> None:
    """Register ``simulate`` with its model arguments and simulation options."""
    parser = subparsers.add_parser(
        "simulate", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    add_step_arguments(parser)
    g = parser.add_argument_group("simulation")
    g.add_argument("--d", default="200", metavar="D", help="input dimension d >= 2 (default: %(default)s)")
    g.add_argument(
        "--seeds", default="1", metavar="S", help="number of independent draws, seeds 0..S-1 (default: %(default)s)"
    )
    g.add_argument("--n-test", default=None, metavar="N", help="test points per seed (default: max(2000, 2p))")
    g.add_argument(
        "--subspace",
        default="random",
        choices=SUBSPACES,
        help="random: V iid Gaussian with Vᵀθ₀ = ϖ (the model); informed: V from the top eigenvectors of "
        "a pilot gradient covariance, outside the theory (default: %(default)s)",
    )
    g.add_argument(
        "--pilot",
        default=None,
        metavar="M",
        help="pilot gradients that estimate the informed subspace (only with --subspace informed; default: d)",
    )
    g.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate and print JSON (``--json``) or a table on stdout; a progress bar on stderr for several seeds."""
    params = params_from_args(args)
    if args.subspace == "informed" and args.alignment is not None:
        raise UserError(
            "--alignment cannot be combined with --subspace informed: there ϖ = Vᵀθ₀ is an output "
            "of the data-informed draw (it is reported), not an input."
        )
    if args.pilot is not None and args.subspace != "informed":
        raise UserError(f"--pilot only applies to --subspace informed, got --subspace {args.subspace}.")
    d = integer("--d", args.d, 2)
    pilot = None if args.pilot is None else integer("--pilot", args.pilot, 1)
    seeds = integer("--seeds", args.seeds, 1)
    n_test = None if args.n_test is None else integer("--n-test", args.n_test, 1)
    from ..progress import Progress

    with Progress(seeds, f"simulate d={d}", enabled=None if seeds > 1 else False) as bar:
        result = simulate(
            params, d, seeds=seeds, n_test=n_test, progress=bar.update, subspace=args.subspace, pilot=pilot
        )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0
