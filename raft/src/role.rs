//! The step rules of each role, chosen by one match in `Raft::step` (as etcd's
//! stepLeader / stepCandidate / stepFollower).

pub(crate) mod candidate;
pub(crate) mod follower;
pub(crate) mod leader;
