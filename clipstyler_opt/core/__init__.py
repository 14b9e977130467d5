"""The core: configuration and its fields, specs, errors and exit codes, naming, presets and the
file gate. Nothing here imports torch, Pillow or network code at import time."""
