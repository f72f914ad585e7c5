"""Tests, one folder per layer (derive, codegen, numeric, cli). This folder is on sys.path, so the
hand-written test oracle (oracle.py) imports as ``oracle``."""
