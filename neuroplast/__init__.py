"""neuroplast: local learning rules for recurrent spiking networks in Brian2, checked against exact BPTT."""

__version__ = "0.1.0"
