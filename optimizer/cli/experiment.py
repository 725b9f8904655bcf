"""``contactplan experiment``: seed experiments on the synthetic Customer 360 generator.

Sub-commands live in their own modules and register on :data:`experiment_app`:
``offline-value`` (value of call-centre/branch data, ``experiment_offline``) and
``privacy`` (privacy–utility sweep of federated training, ``experiment_privacy``).
"""

from __future__ import annotations

import typer

from optimizer.cli import app

experiment_app = typer.Typer(no_args_is_help=True, help="Seed experiments with ground truth (offline-data value, privacy–utility).")
app.add_typer(experiment_app, name="experiment")

from optimizer.cli import experiment_offline  # noqa: E402,F401
from optimizer.cli import experiment_privacy  # noqa: E402,F401
