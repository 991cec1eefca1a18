//! keel-wal (skeleton; being written).
