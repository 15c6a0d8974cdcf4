"""The acceptance suite's plugins: provisioning fixtures and the sign-off reports.

An installed package (`pip install -e .`, tox) loads them through its `pytest11` entry point
(mlops_acceptance/plugin.py) under these same names, so this list then adds nothing; it loads them
when plugin autoload is off (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1)."""

pytest_plugins = ["mlops_acceptance.reports.plugin", "mlops_acceptance.fixtures.plugin"]
