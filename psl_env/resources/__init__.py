"""Resource allocation: water-filling, greedy subchannel deals and local search, in numpy and numba."""
