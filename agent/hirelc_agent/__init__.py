"""hirelc-agent: times ONNX models on the device it runs on, for a hirelc host (see ``server``).

``timing`` (the measurement protocol), ``machine`` (what a device is) and ``ort_measure`` (ONNX Runtime sessions)
are also what ``hirelc`` itself uses to time on its own machine: one implementation for local and remote.
"""

__version__ = "0.1.0"
