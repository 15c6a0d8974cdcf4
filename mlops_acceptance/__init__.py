"""mlops-acceptance as an installed pytest plugin.

The checkout keeps its folders at the top level (`fixtures/`, `reports/`, `load/`, `manifests/`,
`suites/`); packaging maps each of them under this package (pyproject.toml's `package-dir`), so an
installed copy adds one top-level name, not `fixtures` (a PyPI project of its own) or `reports`:

    pip install mlops-acceptance
    pytest --pyargs mlops_acceptance.suites --target local    # reports under ./reports/out
"""
