"""A model point read from the option texts of a command line (:meth:`ModelParams.from_options`).

Its errors name the options as the command line writes them (``--eta``, ``--step``) where the rule is about
options, and a step option given without a step is refused rather than ignored.
"""

from __future__ import annotations

import re

import pytest

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import STEP_FIELDS, ModelParams, ParameterError

#: The model options as argparse leaves them (texts), with --step none and no step option given.
TEXTS = {
    "activation": "relu",
    "teacher": "tanh",
    "k": "1",
    "tau": "1",
    "p_over_d": "4",
    "n_over_d": "1",
    "lam": "0.001",
    "noise_f": "0",
    "noise_g": "0",
    "alignment": None,
    "step": "none",
    **dict.fromkeys(STEP_FIELDS),
}


def test_the_texts_give_the_point_and_its_step() -> None:
    plain = {name: value for name, value in TEXTS.items() if name != "step" and name not in STEP_FIELDS}
    assert ModelParams.from_options(plain) == ModelParams()
    assert ModelParams.from_options({**TEXTS, "k": "1e0", "tau": "0.5", "alignment": "-0.3"}) == ModelParams(
        tau=0.5, alignment=(-0.3,)
    )
    shared = {**TEXTS, "k": "2", "step": "sobolev", "eta": "2", "step_dirs": "shared", "tau_step": "3/d"}
    assert ModelParams.from_options(shared) == ModelParams(
        k=2, step="sobolev", eta=2.0, alpha0=4.0, tau_step=3, k_step=2, step_dirs="shared", second_layer="const"
    )


@pytest.mark.parametrize(
    ("given", "error", "message"),
    [
        ({"eta": "1"}, ParameterError, "--eta needs a first-layer step: add --step l2 or --step sobolev (the default"),
        ({"eta": "1", "second_layer": "sign"}, ParameterError, "--eta, --second-layer need a first-layer step"),
        (
            {"step": "l2", "tau_step": "1", "k_step": "2"},
            ParameterError,
            "--tau-step, --k-step need --step sobolev: an L2 step has no gradient term.",
        ),
        ({"step": "l2", "eta": "-1"}, ParameterError, "eta must be >= 0, got -1.0."),
        ({"step": "l2", "alpha0": "0"}, ParameterError, "alpha0 must be > 0, got 0.0."),
        ({"step": "l2", "eta": "x"}, UserError, "eta must be a real number, got 'x'."),
        ({"step": "sobolev", "k_step": "1.5"}, UserError, "k_step must be an integer, got '1.5'."),
        ({"step": "sobolev", "step_dirs": "shared", "tau_step": "1"}, ParameterError, "scaling, e.g. '1/d'."),
        ({"k": "x"}, UserError, "k must be an integer, got 'x'."),
        ({"tau": "inf"}, ParameterError, "tau must be finite, got inf."),
    ],
)
def test_bad_texts_are_refused_in_one_line_naming_the_option(
    given: dict[str, str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)) as info:
        ModelParams.from_options({**TEXTS, **given})
    assert "\n" not in str(info.value)
