"""mlops-acceptance as an installed pytest plugin.

The checkout keeps its folders at the top level (`fixtures/`, `reports/`, `load/`, `manifests/`,
`suites/`); packaging maps each of them under this package (pyproject.toml's `package-dir`), so an
installed copy adds one top-level name, not `fixtures` (a PyPI project of its own) or `reports`:

    pip install mlops-acceptance
    pytest --pyargs mlops_acceptance.suites --target local    # reports under ./reports/out
"""

from pathlib import Path as _Path

# In a checkout the folders sit beside this one: when the checkout's root is on sys.path (`python -m
# pytest`, `python -c` from it), this folder is found before the editable install's mapping, so its
# subpackages are looked up in the root. An installed wheel has them inside (no pyproject.toml there).
_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "fixtures" / "plugin.py").is_file():
    __path__.append(str(_ROOT))
