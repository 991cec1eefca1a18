//! `<data-dir>/member/identity`: who this member is, written once when the
//! member is created and read on every restart.
//!
//! Format (version 1), text so an operator can read it:
//! ```text
//! keel-identity 1
//! cluster_id <16 hex digits>
//! member_id <16 hex digits>
//! name <member name>
//! crc32 <8 hex digits>        (crc32 of every byte before this line)
//! ```
//! Written to a temporary file, fsynced, renamed into place, directory fsynced:
//! a crash leaves either no identity or a complete one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC_LINE: &str = "keel-identity 1";

/// Who this member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) cluster_id: u64,
    pub(crate) member_id: u64,
    pub(crate) name: String,
}

/// A missing, unreadable or damaged identity file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a keel identity file, or damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl Identity {
    pub(crate) fn path(member_dir: &Path) -> PathBuf {
        member_dir.join("identity")
    }

    fn encode(&self) -> String {
        let body = format!(
            "{MAGIC_LINE}\ncluster_id {:016x}\nmember_id {:016x}\nname {}\n",
            self.cluster_id, self.member_id, self.name
        );
        format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
    }

    fn decode(path: &Path, text: &str) -> Result<Self, IdentityError> {
        let corrupt = |reason: &str| IdentityError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let crc_at = text
            .rfind("crc32 ")
            .ok_or_else(|| corrupt("no crc32 line"))?;
        let (body, crc_line) = text.split_at(crc_at);
        let stored = u32::from_str_radix(crc_line.trim_start_matches("crc32 ").trim(), 16)
            .map_err(|_| corrupt("bad crc32 line"))?;
        if stored != crc32fast::hash(body.as_bytes()) {
            return Err(corrupt("checksum mismatch"));
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC_LINE) {
            return Err(corrupt("unknown format version"));
        }
        let mut field = |key: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(key))
                .and_then(|v| v.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| corrupt(&format!("missing {key}")))
        };
        let hex = |v: String| u64::from_str_radix(&v, 16).map_err(|_| corrupt("bad id"));
        Ok(Identity {
            cluster_id: hex(field("cluster_id")?)?,
            member_id: hex(field("member_id")?)?,
            name: field("name")?,
        })
    }

    /// Reads the identity, `Ok(None)` if the member was never created.
    pub(crate) fn load(member_dir: &Path) -> Result<Option<Self>, IdentityError> {
        let path = Self::path(member_dir);
        match fs::read_to_string(&path) {
            Ok(text) => Self::decode(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(IdentityError::Io { path, source }),
        }
    }

    /// Writes the identity atomically and durably.
    pub(crate) fn store(&self, member_dir: &Path) -> Result<(), IdentityError> {
        let path = Self::path(member_dir);
        let tmp = member_dir.join("identity.tmp");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| IdentityError::Io { path: p, source }
        };
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(self.encode().as_bytes()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(member_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(member_dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards restart: what store() writes, load() reads back unchanged.
    #[test]
    fn identity_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = Identity {
            cluster_id: 0xcdf8_1819_4e3a_8c32,
            member_id: 7,
            name: "a b".into(),
        };
        identity.store(dir.path()).expect("store");
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(identity));
    }

    // Guards against reading a damaged file as an identity: any flipped byte
    // is a Corrupt error naming the file.
    #[test]
    fn damaged_identity_is_an_error_not_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        Identity {
            cluster_id: 1,
            member_id: 2,
            name: "n".into(),
        }
        .store(dir.path())
        .expect("store");
        let path = Identity::path(dir.path());
        let mut bytes = fs::read(&path).expect("read");
        bytes[20] ^= 0x01;
        fs::write(&path, bytes).expect("write");
        let err = Identity::load(dir.path()).expect_err("must fail");
        assert!(err.to_string().contains("identity"), "{err}");
    }

    #[test]
    fn missing_identity_means_a_new_member() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Identity::load(dir.path()).expect("load"), None);
    }
}
