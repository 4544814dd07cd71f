"""Tests of breaker_sim: the state machine, the Modbus map and links, the CLI."""
