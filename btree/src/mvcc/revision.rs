//! `Revision{main, sub}`: the position of one change in the store's history, and its 16-byte
//! big-endian encoding, whose byte order is the revision order (so a page file can use the
//! encoded form as a key).

use crate::error::RevisionDecodeError;

/// The position of one change: `main` is the revision of the transaction that made it (one per
/// committed write transaction, starting at 2 in a new store), `sub` is the change's index
/// within that transaction (0, 1, 2, ...). Ordered by `main`, then `sub`. Both are `>= 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// Transaction revision.
    pub main: i64,
    /// Index of the change within its transaction.
    pub sub: i64,
}

impl Revision {
    /// Length of [`Revision::to_bytes`]: `main` then `sub`, 8 bytes each, big-endian.
    pub const ENCODED_LEN_BYTES: usize = 16;

    /// The revision `main.sub`.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// 16 bytes, `main` then `sub`, big-endian: comparing encodings bytewise orders them as the
    /// revisions. Panics on a negative part (no such revision is ever stored).
    pub fn to_bytes(self) -> [u8; Self::ENCODED_LEN_BYTES] {
        assert!(self.main >= 0, "revision main {} is negative", self.main);
        assert!(self.sub >= 0, "revision sub {} is negative", self.sub);
        let mut bytes = [0u8; Self::ENCODED_LEN_BYTES];
        bytes[..8].copy_from_slice(&self.main.to_be_bytes());
        bytes[8..].copy_from_slice(&self.sub.to_be_bytes());
        bytes
    }

    /// Decodes [`Revision::to_bytes`]; rejects a wrong length or a negative part.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RevisionDecodeError> {
        let Ok(bytes) = <&[u8; Self::ENCODED_LEN_BYTES]>::try_from(bytes) else {
            return Err(RevisionDecodeError::Length {
                len_bytes: bytes.len(),
            });
        };
        let (main, sub) = bytes.split_at(8);
        let main = i64::from_be_bytes(main.try_into().expect("split at 8 of 16 bytes"));
        let sub = i64::from_be_bytes(sub.try_into().expect("split at 8 of 16 bytes"));
        if main < 0 || sub < 0 {
            return Err(RevisionDecodeError::Negative { main, sub });
        }
        Ok(Revision { main, sub })
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The page file will key records by the encoded revision; its byte order must be the
    // revision order, including across the sub and main byte boundaries.
    #[test]
    fn encoding_orders_bytes_as_revisions() {
        let revisions = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(1, 255),
            Revision::new(1, 256),
            Revision::new(2, 0),
            Revision::new(255, i64::MAX),
            Revision::new(256, 0),
            Revision::new(i64::MAX, i64::MAX),
        ];
        for pair in revisions.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(
                pair[0].to_bytes() < pair[1].to_bytes(),
                "{} vs {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn encoding_round_trips() {
        for revision in [
            Revision::new(0, 0),
            Revision::new(7, 3),
            Revision::new(i64::MAX, 9),
        ] {
            assert_eq!(Revision::from_bytes(&revision.to_bytes()), Ok(revision));
        }
        assert_eq!(
            Revision::new(1, 2).to_bytes(),
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
        );
    }

    // Bytes come from disk: a short buffer or a sign bit is an error, never a panic.
    #[test]
    fn decoding_rejects_wrong_length_and_negative_parts() {
        assert_eq!(
            Revision::from_bytes(&[0; 15]),
            Err(RevisionDecodeError::Length { len_bytes: 15 })
        );
        assert_eq!(
            Revision::from_bytes(&[0; 17]),
            Err(RevisionDecodeError::Length { len_bytes: 17 })
        );
        let mut bytes = [0u8; 16];
        bytes[8] = 0x80;
        assert_eq!(
            Revision::from_bytes(&bytes),
            Err(RevisionDecodeError::Negative {
                main: 0,
                sub: i64::MIN
            })
        );
    }
}
