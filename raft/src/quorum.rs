//! Quorum arithmetic, pure: the committed index and election outcome of a majority
//! configuration ([`majority`]) and of a joint one ([`joint`], two majorities that must both
//! agree).

pub(crate) mod joint;
pub(crate) mod majority;

/// Outcome of an election tally.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum VoteResult {
    /// Not decided yet: some votes are missing.
    Pending,
    /// A quorum refused.
    Lost,
    /// A quorum granted.
    Won,
}
