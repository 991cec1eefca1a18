//! etcd's server flags and `ETCD_*` environment variables -> [`Config`].
//!
//! Names, defaults and rules are etcd 3.4's (see `flags.rs`), so scripts
//! written for etcd start keel unchanged:
//! 1. `--flag value`, `--flag=value` and Go's single-dash `-flag` all work;
//!    a bool flag alone means true (`--unsafe-no-fsync`).
//! 2. Each flag can come from `ETCD_<FLAG>` (upper case, `-` -> `_`); setting
//!    both the flag and its variable is an error, as in etcd; an unknown
//!    `ETCD_*` variable is a warning.
//! 3. An unknown flag, a malformed value or a stray argument is an error.
//! 4. A flag keel accepts but does not act on yet produces a startup warning
//!    naming it (see [`Config::warnings`]).

mod flags;
mod parse;
mod values;

pub use parse::{parse_from, ParseOutcome};
pub use values::{AutoCompaction, ClusterState, Config, LogOutput, StorageIo};

/// A configuration the server cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Wrong flags: unknown name, missing value, stray argument.
    #[error("{0}")]
    Usage(String),
    /// A flag or variable whose value does not parse or is out of range.
    #[error("invalid value {value:?} for {source_name}: {reason}")]
    Value {
        /// `--flag` or `ETCD_FLAG`.
        source_name: String,
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Values that parse but do not fit together (etcd's Validate rules).
    #[error("{0}")]
    Invalid(String),
}
