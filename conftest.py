"""Settings for every pytest run in this repository, tests and notebooks alike."""

import os

# The notebooks' scenarios run five times faster under pytest/nbval (kernels inherit this variable);
# a person in JupyterLab sees the real seconds.
os.environ.setdefault("MONITORING_TIME_SCALE", "0.2")
