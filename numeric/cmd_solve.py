"""``sobolev-rf solve``: the asymptotic test errors of one model point."""
from __future__ import annotations

import argparse
import json

from sobolev_rf.numeric.asymptotics import solve
from sobolev_rf.numeric.cli_args import add_model_arguments, params_from_args

_KEYS = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="asymptotic test errors (d, n, p → ∞) of one model point",
        description="Solve the replica-symmetric fixed point of Sobolev training for the given model point "
                    "and print eps_L2, eps_H1, eps_grad, train_loss, train_error_L2 and the order parameters.",
    )
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    result = solve(params)
    out = result.to_dict()
    out["params"] = params.as_dict()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"model: σ = {params.activation}, φ = {params.teacher}, k = {params.k}, τ = {params.tau}, "
          f"p/d = {params.p_over_d:g}, n/d = {params.n_over_d:g}, λ = {params.lam:g}, "
          f"Δ_f = {params.noise_f:g}, Δ_g = {params.noise_g:g}, ϖ = {list(params.alignment)}")
    for key in _KEYS:
        value = out[key]
        print(f"  {key:15s} {'—' if value is None else f'{value:.10g}'}")
    if out["eps_H1_note"]:
        print(f"  note: {out['eps_H1_note']}")
    print(f"  converged in {result.iterations} evaluations, residual {result.residual:.1e}")
    return 0
