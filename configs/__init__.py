"""The shipped scenarios (``scenarios/*.yaml``), agent configs (``agents/*.yaml``) and sweeps
(``sweeps/*.yaml``).

Installed as the data package ``psl_env.configs`` (``pyproject.toml`` maps this folder there);
``psl_env.config_files.shipped`` lists them.
"""
