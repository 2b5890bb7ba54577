"""The jobs a user runs, one module per ``hirelc`` command: each is a plain function with the CLI's defaults that
returns typed records (re-exported as ``hirelc_deploy.profile``, ``compress``, ``export``, ``bench``)."""
