"""Resource trends beyond memory: CPU, disk space, file descriptors, connections.

:class:`ResourceWatch` samples :class:`Probe` readings, fits a linear trend per
resource (numpy least squares), predicts exhaustion with a confidence and a
time to the limit, runs the prevention actions registered for that resource,
records every prediction and action in the recovery store and scores them
afterwards against what happened (precision and recall, in ``stalwart report``).
"""

from ._probes import (
    Probe,
    connections_probe,
    cpu_probe,
    default_probes,
    disk_probe,
    fd_limit,
    fds_probe,
)
from ._trend import Trend, fit
from ._watch import Prediction, ResourceWatch

__all__ = [
    "Prediction",
    "Probe",
    "ResourceWatch",
    "Trend",
    "connections_probe",
    "cpu_probe",
    "default_probes",
    "disk_probe",
    "fd_limit",
    "fds_probe",
    "fit",
]
