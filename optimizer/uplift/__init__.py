"""Response and uplift models → contact utilities; the value of offline data; the Hillstrom demo.

::

    from optimizer.uplift import TLearner, LogisticResponse, LinearUplift, encode_features
    tau = TLearner().fit(X, y, treatment).predict(X_new)          # uplift per row (n,) or (n, M)
    model = LogisticResponse().fit(S, y, action)                   # p(s, a) = sigma(theta' f(s, a))
    from optimizer import utilities_from_models
    u = utilities_from_models(model, S_now, cost=cost, value=80.0)  # (n, M, T) for PlanningProblem

Modules: :mod:`~optimizer.uplift.models` (estimators), :mod:`~optimizer.uplift.features`
(one-hot helper), :mod:`~optimizer.uplift.metrics` (log-loss, AUC, Qini with interval),
:mod:`~optimizer.uplift.utilities`, :mod:`~optimizer.uplift.offline_value` (the C360
experiment), :mod:`~optimizer.uplift.hillstrom` (real-data demo). The maths:
:mod:`formulations.uplift`.
"""

from optimizer.uplift.features import FeatureEncoder, encode_features
from optimizer.uplift.metrics import QiniInterval, UpliftReport, log_loss, qini_interval, roc_auc, uplift_report
from optimizer.uplift.models import LinearUplift, LogisticResponse, TLearner
from optimizer.uplift.utilities import day_of_week_effects, predicted_uplift, utilities_from_models

__all__ = ["TLearner", "LogisticResponse", "LinearUplift", "FeatureEncoder", "encode_features", "log_loss",
           "roc_auc", "qini_interval", "QiniInterval", "uplift_report", "UpliftReport", "utilities_from_models",
           "predicted_uplift", "day_of_week_effects"]
