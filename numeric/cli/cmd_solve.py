"""``sobolev-rf solve``: the asymptotic test errors of one model point."""

from __future__ import annotations

import argparse
import json

from ...derive.errors import UserError
from ...derive.params import ModelParams
from .args import add_model_arguments, add_step_arguments, params_from_args

_KEYS = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2")
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _distribution(params: ModelParams) -> dict:
    if params.k == 0:
        raise UserError("--alignment-distribution needs k >= 1 (with k = 0 there is no alignment).")
    from ..studies.alignment import alignment_laws
    from ..theory.solve import solve

    laws = alignment_laws(params, lambda p: solve(p).to_dict())
    return {
        key: {
            "mean": law.mean,
            "std": law.variance**0.5,
            "quantiles": {f"{q:g}": law.quantile(q) for q in _QUANTILES},
            "quadratic_form": {"c": law.c, "b": law.b.tolist(), "A": law.A.tolist()},
        }
        for key, law in laws.items()
    }


def _order_text(value: object) -> str:
    """One order parameter: a number, the entries of a per-row list (— where a branch has none), or named
    parts (``name = value``)."""
    if isinstance(value, dict):
        return ", ".join(f"{name} = {_order_text(v)}" for name, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_order_text(v) for v in value)
    if isinstance(value, (int, float)):
        return f"{value:.10g}"
    return "—" if value is None else str(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        description="Solve the replica-symmetric fixed point of Sobolev training for the given model point "
        "and print eps_L2, eps_H1, eps_grad, train_loss, train_error_L2 and the order parameters.",
    )
    add_model_arguments(p)
    add_step_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--alignment-distribution",
        action="store_true",
        help="also give the mean and quantiles of each error over ϖ ~ N(0, I_k) (exact quadratic form in ϖ)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..theory.solve import solve

    params = params_from_args(args)
    result = solve(params)
    out = result.to_dict()
    out["params"] = params.as_dict()
    if args.alignment_distribution:
        out["alignment_distribution"] = _distribution(params)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"model: {params.describe()}")
    for key in _KEYS:
        value = out[key]
        print(f"  {key:15s} {'—' if value is None else f'{value:.10g}'}")
    print("order parameters:")
    for name, value in out["order_parameters"].items():
        print(f"  {name:15s} {_order_text(value)}")
    for note in ([out["eps_H1_note"]] if out["eps_H1_note"] else []) + out["notes"]:
        print(f"  note: {note}")
    system = result.state[0] if result.state else "?"
    print(f"  converged: generated solver of {system}, residual {result.residual:.1e}")
    if args.alignment_distribution:
        print("law over ϖ ~ N(0, I_k):")
        print(f"  {'':15s} {'mean':>10s} " + " ".join(f"{f'q{int(100 * q)}':>10s}" for q in _QUANTILES))
        for key, law in out["alignment_distribution"].items():
            print(f"  {key:15s} {law['mean']:10.5g} " + " ".join(f"{v:10.5g}" for v in law["quantiles"].values()))
    return 0
