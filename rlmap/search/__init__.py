"""Search over the map space: its size and samplers, the random, genetic, annealing and optimal mappers
behind one interface, the mapper registry and the per-network driver.  Depends on rlmap.model and
rlmap.spec."""
