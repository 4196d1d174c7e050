"""A deterministic demo e-commerce landscape of microservices, for the platform to extract.

`simulate` writes event files (orders, payments, shipping, clickstream), the service databases
(inventory, customers, catalog, promotions) and a ground-truth manifest; `api_server` serves
the catalog and promotions databases as paginated REST APIs. docs/LANDSCAPE.md describes it.
"""

from batch_platform.simulator.landscape import simulate
from batch_platform.simulator.options import FaultRates, LandscapeError

__all__ = ["FaultRates", "LandscapeError", "simulate"]
