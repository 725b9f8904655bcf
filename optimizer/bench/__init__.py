"""Solver benchmark suite: instance library, subprocess runner, MPS/LP export, performance profiles.

Public API::

    from optimizer.bench import export_model, run_suite, suite_instances
    export_model(problem, "week.mps")        # or .lp
"""

from optimizer.bench.export import export_data, export_model, load_data
from optimizer.bench.instances import InstanceSpec, get_instance, load_library, suite_instances
from optimizer.bench.report import markdown_table, performance_profile, summarize, write_markdown_report
from optimizer.bench.runner import machine_info, run_one, run_suite

__all__ = ["export_model", "export_data", "load_data", "InstanceSpec", "get_instance", "load_library",
           "suite_instances", "run_suite", "run_one", "machine_info", "markdown_table", "performance_profile",
           "summarize", "write_markdown_report"]
