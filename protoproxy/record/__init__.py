"""Record what passes through a listener as testbed fakes (listener option ``record``)."""
