"""The acceptance suite's plugins: provisioning fixtures and the sign-off reports."""

pytest_plugins = ["reports.plugin", "fixtures.plugin"]
