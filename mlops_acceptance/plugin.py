"""The `pytest11` entry point: registers the report plugin, then the fixtures plugin.

Each is registered under its module's name, so the checkout's root conftest.py, which names the same
modules for runs without plugin autoload (PYTEST_DISABLE_PLUGIN_AUTOLOAD), finds them registered and
adds nothing.
"""

pytest_plugins = ["mlops_acceptance.reports.plugin", "mlops_acceptance.fixtures.plugin"]
