//! keel-btree (skeleton; being written).
