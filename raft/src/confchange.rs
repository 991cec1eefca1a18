//! Membership changes applied to a [`crate::tracker::ProgressTracker`]: one change at a time
//! ([`changer`]) and rebuilding a tracker from a stored [`crate::ConfState`] ([`restore`]).

pub(crate) mod changer;
pub(crate) mod restore;
