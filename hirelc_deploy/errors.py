"""The few exceptions the toolchain raises on purpose.

Every message names the file or flag at fault and what is wrong with it, so the CLI can print it as one line.
"""


class HirelcError(Exception):
    """Base class: a problem with the user's input or environment, reported without a traceback."""


class InputError(HirelcError):
    """A file, directory or flag the user gave is missing, malformed or inconsistent."""


class CheckpointError(InputError):
    """A checkpoint cannot be loaded safely or does not fit the requested architecture."""


class DatasetError(InputError):
    """A dataset directory or file is missing, empty or malformed."""


class TargetError(InputError):
    """A target (device profile) file is unknown or malformed."""


class TableError(InputError):
    """A latency table is malformed, from another schema version or from another device."""


class DeviceError(HirelcError):
    """A remote device (its hirelc-agent) cannot be reached, refuses the token, or has changed."""


class NoisyDeviceError(HirelcError):
    """The device was too busy or unsteady to measure to the accuracy a latency table needs."""
