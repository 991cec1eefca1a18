//! keel-raft (skeleton; being written).
