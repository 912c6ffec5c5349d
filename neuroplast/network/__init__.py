"""The Brian2 view of the model (the only package that imports brian2): devices and the network builder."""
