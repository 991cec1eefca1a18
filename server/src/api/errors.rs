//! The single table from keel's API errors to gRPC status codes and etcd's
//! exact error strings (etcd 3.4 `etcdserver/api/v3rpc/rpctypes/error.go`).
//!
//! Clients match these strings to typed errors (clientv3's `rpctypes`,
//! etcd-client's `Error::GRpcStatus`), so each one is part of the wire
//! contract: change none of them.

use tonic::Code;

/// An error a client sees, named by what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A request without a key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` / `ignore_lease` on a key that does not exist, or an empty txn op.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A value together with `ignore_value`.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// A lease together with `ignore_lease`.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// More txn operations than `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn that writes one key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A read or compaction at a revision below the compacted one.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// A read or compaction at a revision above the current one.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// The backend quota is exhausted.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A lease id that names no lease.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A grant for a lease id that exists.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// A grant with a TTL above etcd's maximum.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A request larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// Too many proposals are waiting.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// No Raft leader is known.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The server is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The request did not complete in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// A linearizable read could not wait for the applied index.
    #[error("etcdserver: request timed out, waiting for the applied index took too long")]
    TimeoutWaitAppliedIndex,
    /// The store found corrupt data.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// A member id that is not (any more) in the cluster.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// MemberAdd with an id that exists.
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    /// MemberAdd/Update with peer URLs another member has.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    /// MemberAdd/Update with malformed peer URLs.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// MemberPromote of a voter.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// MemberPromote of a learner that is behind the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// MemberAdd of a second learner (etcd 3.4 allows one).
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A reconfiguration that would leave too few started voters.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    /// A leader-only request on a follower.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// MoveLeader to a member that cannot lead.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// MoveLeader that did not complete in time (etcd sends it as Unknown).
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,
    /// The cluster is not healthy enough for the request.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// Proclaim by a candidate that is not (any more) the leader
    /// (clientv3/concurrency ErrElectionNotLeader; etcd sends it as Unknown).
    #[error("election: not leader")]
    ElectionNotLeader,
    /// Leader of an election without candidates (ErrElectionNoLeader).
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Proclaim or Resign without a leader key (v3election ErrMissingLeaderKey).
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// A server fault; the text says what.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The gRPC status code etcd sends with this error.
    pub fn code(&self) -> Code {
        match self {
            ApiError::EmptyKey
            | ApiError::KeyNotFound
            | ApiError::ValueProvided
            | ApiError::LeaseProvided
            | ApiError::TooManyOps
            | ApiError::DuplicateKey
            | ApiError::RequestTooLarge => Code::InvalidArgument,
            ApiError::Compacted | ApiError::FutureRevision | ApiError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            ApiError::LeaseExist => Code::FailedPrecondition,
            ApiError::NoSpace | ApiError::TooManyRequests => Code::ResourceExhausted,
            ApiError::LeaseNotFound => Code::NotFound,
            ApiError::NoLeader
            | ApiError::Stopped
            | ApiError::Timeout
            | ApiError::TimeoutWaitAppliedIndex => Code::Unavailable,
            ApiError::Corrupt => Code::DataLoss,
            ApiError::Internal(_) => Code::Internal,
            ApiError::MemberNotFound => Code::NotFound,
            ApiError::MemberExist
            | ApiError::PeerUrlExist
            | ApiError::MemberNotLearner
            | ApiError::LearnerNotReady
            | ApiError::TooManyLearners
            | ApiError::MemberNotEnoughStarted
            | ApiError::NotLeader
            | ApiError::BadLeaderTransferee => Code::FailedPrecondition,
            ApiError::MemberBadUrls => Code::InvalidArgument,
            ApiError::Unhealthy => Code::Unavailable,
            ApiError::TimeoutLeaderTransfer => Code::Unknown,
            ApiError::ElectionNotLeader
            | ApiError::ElectionNoLeader
            | ApiError::MissingLeaderKey => Code::Unknown,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        tonic::Status::new(error.code(), error.to_string())
    }
}

impl From<keel_btree::MvccError> for ApiError {
    fn from(error: keel_btree::MvccError) -> Self {
        match error {
            keel_btree::MvccError::Compacted { .. } => ApiError::Compacted,
            keel_btree::MvccError::FutureRevision { .. } => ApiError::FutureRevision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the wire contract: the strings and codes clients match on, copied
    // from etcd 3.4's rpctypes/error.go, must never drift.
    #[test]
    fn etcd_errors_keep_their_exact_strings_and_codes() {
        let table = [
            (
                ApiError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                ApiError::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                ApiError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                ApiError::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                ApiError::FutureRevision,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                ApiError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                ApiError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                ApiError::LeaseExist,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                ApiError::LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                ApiError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                ApiError::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
        ];
        for (error, code, text) in table {
            let status = tonic::Status::from(error);
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text);
        }
    }
}
