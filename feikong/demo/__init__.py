"""The whole-system demo (``feikong demo``): a district on one machine, as separate processes.

- :mod:`.scenario` — every knob, from ``scenarios/default.toml`` and ``--scenario FILE``;
- :mod:`.clock` — the accelerated clock every process shares (epoch + factor);
- :mod:`.district` — the district: accounts, meters, users, settings, simulator files;
- :mod:`.processes` — starting and stopping the parts; :mod:`.parts` — their entry points
  (meter fleet, head-end, prepaid platform);
- :mod:`.platform` — the prepaid platform's day on the shared clock;
- :mod:`.behaviour` — how customers pay and close their breakers;
- :mod:`.runner` — the whole run, its progress and its end.
"""
