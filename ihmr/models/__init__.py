"""Network architectures shared by the benchmarks (no weights are downloaded, ever)."""
