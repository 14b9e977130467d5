"""Loaded in test subprocesses via PYTHONPATH: no network except loopback."""

from _netblock import block_network

block_network()
