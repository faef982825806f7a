//! Workloads, criterion benches against peers, and a GradBench tool for difi.
