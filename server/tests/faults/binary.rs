//! Which etcd-3.4-compatible server binary the cluster runs, chosen by
//! `KEEL_FAULT_BINARY` (`etcd`, `keel`, or a path to any binary that takes
//! etcd's flags).

use std::path::PathBuf;

use super::error::FaultError;

/// The environment variable that picks the member binary.
pub(crate) const BINARY_ENV: &str = "KEEL_FAULT_BINARY";

/// A server binary that takes etcd 3.4's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MemberBinary {
    /// Debian's `etcd` (3.4) from `PATH`.
    Etcd,
    /// The `keel` binary cargo built for these tests.
    Keel,
    /// Any other binary, by path.
    Path(PathBuf),
}

impl MemberBinary {
    /// `KEEL_FAULT_BINARY` if set, else `default`.
    pub(crate) fn from_env(default: MemberBinary) -> Result<MemberBinary, FaultError> {
        match std::env::var(BINARY_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(default),
            Err(std::env::VarError::NotUnicode(value)) => Err(FaultError::Config {
                name: BINARY_ENV,
                value: value.to_string_lossy().into_owned(),
                reason: "not UTF-8".to_string(),
            }),
            Ok(value) => MemberBinary::parse(&value),
        }
    }

    fn parse(value: &str) -> Result<MemberBinary, FaultError> {
        match value {
            "etcd" => Ok(MemberBinary::Etcd),
            "keel" => Ok(MemberBinary::Keel),
            path if path.contains('/') => Ok(MemberBinary::Path(PathBuf::from(path))),
            _ => Err(FaultError::Config {
                name: BINARY_ENV,
                value: value.to_string(),
                reason: "expected `etcd`, `keel`, or a path containing '/'".to_string(),
            }),
        }
    }

    /// The program to execute.
    pub(crate) fn program(&self) -> PathBuf {
        match self {
            MemberBinary::Etcd => PathBuf::from("etcd"),
            MemberBinary::Keel => PathBuf::from(env!("CARGO_BIN_EXE_keel")),
            MemberBinary::Path(path) => path.clone(),
        }
    }

    /// A short name for reports.
    pub(crate) fn name(&self) -> String {
        match self {
            MemberBinary::Etcd => "etcd".to_string(),
            MemberBinary::Keel => "keel".to_string(),
            MemberBinary::Path(path) => path.display().to_string(),
        }
    }
}
