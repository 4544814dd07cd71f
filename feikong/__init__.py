"""feikong — prepaid (fee-controlled, 费控) electricity metering.

This package is the command line and the wiring of the others
(``protocol``, ``breaker_sim``, ``meter_sim``, ``headend``, ``prepaid``, ``console``).
"""

__version__ = "0.1.0"
