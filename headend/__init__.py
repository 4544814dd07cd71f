"""The head-end (master station, 主站): archive, channels, jobs, collection and control."""
