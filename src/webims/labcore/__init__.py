"""webims.labcore: a compact, standards-shaped IMS core for the demo and the tests (DESIGN.md §1).

Real deployments use their own IMS; this one runs on one machine and also serves
Kamailio's I-CSCF/S-CSCF over Cx.

* :mod:`webims.labcore.hss` — the HSS (Cx over Diameter, subscriber store, admin endpoint).
* :mod:`webims.labcore.icscf`, :mod:`webims.labcore.scscf` — the I-CSCF and S-CSCF;
  :func:`start_labcore` runs HSS + I-CSCF + S-CSCF in one process (:mod:`webims.labcore.core`).

``serve(config)`` is what ``webims serve labcore`` runs: the whole lab core.
"""

from .core import LabCore, serve, start_labcore
from .hss import CxClient, HssConfig, HssServer, SubscriberStore, running_hss
from .settings import LabCoreConfig

__all__ = [
    "CxClient",
    "HssConfig",
    "HssServer",
    "LabCore",
    "LabCoreConfig",
    "SubscriberStore",
    "running_hss",
    "serve",
    "start_labcore",
]
