//! The thread-per-core DeltaFIFO: per-key ordered, coalescing delivery of deltas to the store and handlers.
