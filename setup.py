"""Packaging beyond what pyproject.toml can declare: the repository's top-level ``conf/`` (Hydra's
config groups) and ``sweeps/`` (the studies) ship inside the package as ``lora_lab/conf`` and
``lora_lab/studies`` -- one copy in the repository, mapped with ``package_dir`` at build time and
found at run time by `lora_lab.resources`."""

from setuptools import find_namespace_packages, setup

SHIPPED = {"lora_lab.conf": "conf", "lora_lab.studies": "sweeps"}

setup(
    # namespace-aware: hydra_plugins has no __init__.py (Hydra's plugin namespace), its sweeper package must ship
    packages=find_namespace_packages(include=["lora_lab*", "hydra_plugins*"], exclude=["*__pycache__*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={"lora_lab.conf": ["**/*.yaml"], "lora_lab.studies": ["*.yaml"]},
    # conf/local/ is a clone's own (git-ignored) site settings; an install keeps them in a user config dir
    exclude_package_data={"lora_lab.conf": ["local/*"]},
)
