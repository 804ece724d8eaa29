"""rt2 benchmarks (``make bench``): decode speed, policy-node overhead, serving throughput."""
