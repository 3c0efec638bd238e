"""Performance benchmarks: speed/memory measured as ratios against a peer in the same run."""
