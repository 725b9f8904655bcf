"""``contactplan experiment offline-value`` (issue 9): registers on ``experiment_app``."""
