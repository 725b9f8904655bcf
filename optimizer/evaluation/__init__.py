"""Evaluation toolkit: off-policy value, uplift metrics, delayed conversions, calibration, experiments.

Before a planner trusts a new policy, its value is estimated from the logs of
the old one::

    from optimizer.evaluation import off_policy_value
    res = off_policy_value(rewards, logging_propensity, target_propensity, method="dr",
                           reward_hat_logged=mu_logged, reward_hat_target=mu_target)
    res.value, res.ci, res.ess

Modules (each docstring states its maths):

- :mod:`~optimizer.evaluation.off_policy` — IPS, SNIPS, DM, DR, switch-DR, clipping, normal and bootstrap CIs, ESS
- :mod:`~optimizer.evaluation.reward_model` — cross-fitted shrinkage reward model for DM/DR
- :mod:`~optimizer.evaluation.traces` — decision-trace schema (JSON lines), reader, evaluation
- :mod:`~optimizer.evaluation.uplift_metrics` — Qini / uplift curves, AUUC, uplift@k (scikit-uplift conventions)
- :mod:`~optimizer.evaluation.delayed` — conversion rates under censoring (exponential MLE, Kaplan-Meier)
- :mod:`~optimizer.evaluation.calibration` — Platt scaling, reliability curves, MAPE
- :mod:`~optimizer.evaluation.experiment` — hash assignment, sample size / power, guardrails and stop rule
- :mod:`~optimizer.evaluation.open_bandit` — the real-data check on the Open Bandit Dataset
"""

from optimizer.evaluation.calibration import (PlattScaling, ReliabilityCurve, mean_absolute_percentage_error,
                                              reliability_curve, weighted_mape)
from optimizer.evaluation.delayed import ExponentialDelayModel, KaplanMeierConversion, corrected_conversion_rates
from optimizer.evaluation.experiment import (Guardrail, GuardrailCheck, GuardrailMonitor, SampleSize,
                                             assign_variants, hash_fraction, power_two_proportions,
                                             sample_size_means, sample_size_two_proportions)
from optimizer.evaluation.off_policy import (OffPolicyResult, compare_estimators, effective_sample_size,
                                             expected_reward, off_policy_value, policy_propensity)
from optimizer.evaluation.reward_model import TabularRewardModel, cross_fit_reward_table
from optimizer.evaluation.traces import (DecisionTraces, TraceEvaluation, evaluate_traces, read_decision_traces,
                                         write_decision_traces)
from optimizer.evaluation.uplift_metrics import (Curve, perfect_qini_curve, perfect_uplift_curve, qini_auc_score,
                                                 qini_curve, uplift_at_k, uplift_auc_score, uplift_curve)

__all__ = [
    "off_policy_value", "OffPolicyResult", "compare_estimators", "effective_sample_size", "policy_propensity",
    "expected_reward", "TabularRewardModel", "cross_fit_reward_table",
    "read_decision_traces", "write_decision_traces", "DecisionTraces", "evaluate_traces", "TraceEvaluation",
    "qini_curve", "uplift_curve", "perfect_qini_curve", "perfect_uplift_curve", "qini_auc_score",
    "uplift_auc_score", "uplift_at_k", "Curve",
    "ExponentialDelayModel", "KaplanMeierConversion", "corrected_conversion_rates",
    "PlattScaling", "ReliabilityCurve", "reliability_curve", "mean_absolute_percentage_error", "weighted_mape",
    "assign_variants", "hash_fraction", "sample_size_two_proportions", "sample_size_means",
    "power_two_proportions", "SampleSize", "Guardrail", "GuardrailMonitor", "GuardrailCheck",
]
