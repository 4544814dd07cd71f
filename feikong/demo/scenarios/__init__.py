"""Demo scenarios shipped with feikong (``default.toml``: the defaults of ``feikong demo``)."""
