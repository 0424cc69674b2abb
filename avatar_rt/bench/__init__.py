"""`avatar-rt bench`: latency and capacity measured end to end against any server (see command.py)."""
