"""The wheel's packages: `mlops_acceptance` and each top-level folder's packages under it.

pyproject.toml maps each folder (`package-dir`); this lists their subpackages as found, so a new
subpackage ships without editing a list."""

from setuptools import find_packages, setup

FOLDERS = ("fixtures", "reports", "load", "manifests", "suites")

setup(packages=["mlops_acceptance", *(f"mlops_acceptance.{folder}{'.' + sub if sub else ''}"
                                      for folder in FOLDERS for sub in ["", *find_packages(folder)])])
