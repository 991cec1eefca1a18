//! The simulated application: a tiny key-value store with put, get and compare-and-swap on
//! a handful of keys, plus one session per client that makes a re-applied proposal a no-op
//! (Raft thesis §6.3: a proposal the network duplicated, or a client's older proposal that
//! commits after a newer one, must not take effect twice or out of order).
//!
//! Writes (put, cas) travel as entry payloads ([`Command`]); reads go through ReadIndex and
//! never enter the log. The store's state travels as snapshot data ([`KvStore::encode`]).
//! Decoding verifies every byte and returns [`KvDecodeError`]; it never panics.

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::digest::digest_bytes;

/// Number of keys the workload touches ("a handful": contention is the point).
pub const KEY_COUNT: u8 = 4;

/// Encoding version of commands and store snapshots.
const KV_ENCODING_VERSION: u8 = 1;
/// Bytes of an encoded [`Command`]: version, client, op, kind, key, has-expected,
/// expected, value.
const COMMAND_SIZE_BYTES: usize = 1 + 4 + 8 + 1 + 1 + 1 + 8 + 8;

/// One of the [`KEY_COUNT`] keys (`0..KEY_COUNT`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Key(pub u8);

/// A simulated client (a sequential process of the history).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClientId(pub u32);

/// A client's operation number: 1, 2, ... in invocation order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct OpId(pub u64);

/// What a client asks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KvInput {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Key,
        /// New value (unique per put in a run).
        value: u64,
    },
    /// Read `key` (linearizable, through ReadIndex).
    Get {
        /// The key.
        key: Key,
    },
    /// Set `key` to `value` if it currently holds `expected` (None = absent).
    Cas {
        /// The key.
        key: Key,
        /// Required current value.
        expected: Option<u64>,
        /// New value (unique per cas in a run).
        value: u64,
    },
}

impl KvInput {
    /// The key the operation touches.
    pub fn key(&self) -> Key {
        match *self {
            KvInput::Put { key, .. } | KvInput::Get { key } | KvInput::Cas { key, .. } => key,
        }
    }
}

/// What the store answered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum KvOutput {
    /// The put took effect.
    Put,
    /// The value read (None = absent).
    Get(Option<u64>),
    /// Whether the compare-and-swap took effect.
    Cas(bool),
}

impl fmt::Display for KvInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvInput::Put { key, value } => write!(f, "put(k{}, {value})", key.0),
            KvInput::Get { key } => write!(f, "get(k{})", key.0),
            KvInput::Cas {
                key,
                expected,
                value,
            } => write!(f, "cas(k{}, {}, {value})", key.0, show_value(*expected)),
        }
    }
}

impl fmt::Display for KvOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOutput::Put => f.write_str("ok"),
            KvOutput::Get(value) => f.write_str(&show_value(*value)),
            KvOutput::Cas(swapped) => write!(f, "{swapped}"),
        }
    }
}

fn show_value(value: Option<u64>) -> String {
    value.map_or_else(|| "nil".to_string(), |v| v.to_string())
}

/// Why a command or store snapshot did not decode.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum KvDecodeError {
    /// Wrong length for the fixed layout.
    #[error("kv: {what} has {len_bytes} bytes, expected {expected_bytes}")]
    Length {
        /// What was decoded.
        what: &'static str,
        /// Bytes present.
        len_bytes: usize,
        /// Bytes the layout needs.
        expected_bytes: usize,
    },
    /// Unknown encoding version.
    #[error("kv: unknown encoding version {version}")]
    Version {
        /// Version byte found.
        version: u8,
    },
    /// A field holds an impossible value.
    #[error("kv: invalid {field} {value}")]
    Field {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
}

/// A write as proposed to Raft: who asks, which of their operations, and what.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Command {
    pub(crate) client: ClientId,
    pub(crate) op: OpId,
    pub(crate) input: KvInput,
}

impl Command {
    /// Layout (little-endian): `version u8 | client u32 | op u64 | kind u8 (0 put, 1 get,
    /// 2 cas) | key u8 | has_expected u8 | expected u64 | value u64`.
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(COMMAND_SIZE_BYTES);
        buf.put_u8(KV_ENCODING_VERSION);
        buf.put_u32_le(self.client.0);
        buf.put_u64_le(self.op.0);
        let (kind, key, expected, value) = match self.input {
            KvInput::Put { key, value } => (0u8, key, None, value),
            KvInput::Get { key } => (1, key, None, 0),
            KvInput::Cas {
                key,
                expected,
                value,
            } => (2, key, expected, value),
        };
        buf.put_u8(kind);
        buf.put_u8(key.0);
        buf.put_u8(u8::from(expected.is_some()));
        buf.put_u64_le(expected.unwrap_or(0));
        buf.put_u64_le(value);
        debug_assert_eq!(buf.len(), COMMAND_SIZE_BYTES);
        buf.freeze()
    }

    pub(crate) fn decode(data: &Bytes) -> Result<Command, KvDecodeError> {
        if data.len() != COMMAND_SIZE_BYTES {
            return Err(KvDecodeError::Length {
                what: "command",
                len_bytes: data.len(),
                expected_bytes: COMMAND_SIZE_BYTES,
            });
        }
        let mut buf = data.clone();
        check_version(buf.get_u8())?;
        let client = ClientId(buf.get_u32_le());
        let op = OpId(buf.get_u64_le());
        let kind = buf.get_u8();
        let key = decode_key(buf.get_u8())?;
        let expected = decode_option(buf.get_u8(), buf.get_u64_le())?;
        let value = buf.get_u64_le();
        let input = match kind {
            0 => KvInput::Put { key, value },
            1 => KvInput::Get { key },
            2 => KvInput::Cas {
                key,
                expected,
                value,
            },
            other => {
                return Err(KvDecodeError::Field {
                    field: "command kind",
                    value: u64::from(other),
                })
            }
        };
        Ok(Command { client, op, input })
    }
}

fn check_version(version: u8) -> Result<(), KvDecodeError> {
    if version == KV_ENCODING_VERSION {
        Ok(())
    } else {
        Err(KvDecodeError::Version { version })
    }
}

fn decode_key(raw: u8) -> Result<Key, KvDecodeError> {
    if raw < KEY_COUNT {
        Ok(Key(raw))
    } else {
        Err(KvDecodeError::Field {
            field: "key",
            value: u64::from(raw),
        })
    }
}

fn decode_option(flag: u8, value: u64) -> Result<Option<u64>, KvDecodeError> {
    match flag {
        0 => Ok(None),
        1 => Ok(Some(value)),
        other => Err(KvDecodeError::Field {
            field: "option flag",
            value: u64::from(other),
        }),
    }
}

/// The last operation a client had applied, and its answer (replayed for duplicates).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Session {
    op: OpId,
    output: KvOutput,
}

/// The replicated state: values and client sessions. Applying the same commands in the same
/// order gives the same state (and digest) on every node.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct KvStore {
    values: BTreeMap<Key, u64>,
    sessions: BTreeMap<ClientId, Session>,
}

impl KvStore {
    /// Applies a committed command. Returns its output, the cached output for a duplicate of
    /// the client's latest operation, or None for an older operation (it never takes effect).
    pub(crate) fn apply(&mut self, command: &Command) -> Option<KvOutput> {
        if let Some(session) = self.sessions.get(&command.client) {
            if command.op == session.op {
                return Some(session.output);
            }
            if command.op < session.op {
                return None;
            }
        }
        let output = self.execute(command.input);
        self.sessions.insert(
            command.client,
            Session {
                op: command.op,
                output,
            },
        );
        Some(output)
    }

    fn execute(&mut self, input: KvInput) -> KvOutput {
        match input {
            KvInput::Put { key, value } => {
                self.values.insert(key, value);
                KvOutput::Put
            }
            KvInput::Get { key } => KvOutput::Get(self.get(key)),
            KvInput::Cas {
                key,
                expected,
                value,
            } => {
                let swapped = self.get(key) == expected;
                if swapped {
                    self.values.insert(key, value);
                }
                KvOutput::Cas(swapped)
            }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<u64> {
        self.values.get(&key).copied()
    }

    /// Digest of the whole state (equal states, equal digests).
    pub(crate) fn digest(&self) -> u64 {
        digest_bytes(&self.encode())
    }

    /// Layout (little-endian): `version u8 | values u32 | (key u8, value u64)* | sessions u32 |
    /// (client u32, op u64, kind u8, flag u8, value u64)*`.
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_u8(KV_ENCODING_VERSION);
        buf.put_u32_le(self.values.len() as u32);
        for (key, value) in &self.values {
            buf.put_u8(key.0);
            buf.put_u64_le(*value);
        }
        buf.put_u32_le(self.sessions.len() as u32);
        for (client, session) in &self.sessions {
            buf.put_u32_le(client.0);
            buf.put_u64_le(session.op.0);
            let (kind, flag, value) = match session.output {
                KvOutput::Put => (0u8, 0u8, 0u64),
                KvOutput::Get(v) => (1, u8::from(v.is_some()), v.unwrap_or(0)),
                KvOutput::Cas(swapped) => (2, u8::from(swapped), 0),
            };
            buf.put_u8(kind);
            buf.put_u8(flag);
            buf.put_u64_le(value);
        }
        buf.freeze()
    }

    pub(crate) fn decode(data: &Bytes) -> Result<KvStore, KvDecodeError> {
        let mut buf = data.clone();
        let need = |buf: &Bytes, bytes: usize| {
            if buf.remaining() < bytes {
                Err(KvDecodeError::Length {
                    what: "kv store",
                    len_bytes: data.len(),
                    expected_bytes: data.len() + bytes - buf.remaining(),
                })
            } else {
                Ok(())
            }
        };
        need(&buf, 5)?;
        check_version(buf.get_u8())?;
        let mut store = KvStore::default();
        for _ in 0..buf.get_u32_le() {
            need(&buf, 9)?;
            let key = decode_key(buf.get_u8())?;
            store.values.insert(key, buf.get_u64_le());
        }
        need(&buf, 4)?;
        for _ in 0..buf.get_u32_le() {
            need(&buf, 22)?;
            let client = ClientId(buf.get_u32_le());
            let op = OpId(buf.get_u64_le());
            let output = decode_output(buf.get_u8(), buf.get_u8(), buf.get_u64_le())?;
            store.sessions.insert(client, Session { op, output });
        }
        if buf.has_remaining() {
            return Err(KvDecodeError::Length {
                what: "kv store",
                len_bytes: data.len(),
                expected_bytes: data.len() - buf.remaining(),
            });
        }
        Ok(store)
    }
}

fn decode_output(kind: u8, flag: u8, value: u64) -> Result<KvOutput, KvDecodeError> {
    match kind {
        0 => Ok(KvOutput::Put),
        1 => Ok(KvOutput::Get(decode_option(flag, value)?)),
        2 => Ok(KvOutput::Cas(flag == 1)),
        other => Err(KvDecodeError::Field {
            field: "session output kind",
            value: u64::from(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn command(client: u32, op: u64, input: KvInput) -> Command {
        Command {
            client: ClientId(client),
            op: OpId(op),
            input,
        }
    }

    // The store's rules: cas compares, duplicates replay their answer, older ops are void.
    #[test]
    fn sessions_make_duplicates_and_stale_ops_harmless() {
        let mut store = KvStore::default();
        let key = Key(1);
        let put = command(1, 1, KvInput::Put { key, value: 10 });
        assert_eq!(store.apply(&put), Some(KvOutput::Put));
        let cas = KvInput::Cas {
            key,
            expected: Some(10),
            value: 11,
        };
        assert_eq!(store.apply(&command(2, 1, cas)), Some(KvOutput::Cas(true)));
        assert_eq!(store.apply(&command(2, 1, cas)), Some(KvOutput::Cas(true)));
        assert_eq!(store.get(key), Some(11));
        let late = command(1, 0, KvInput::Put { key, value: 99 });
        assert_eq!(store.apply(&late), None);
        assert_eq!(store.get(key), Some(11));
        let failed = KvInput::Cas {
            key,
            expected: None,
            value: 12,
        };
        assert_eq!(
            store.apply(&command(2, 2, failed)),
            Some(KvOutput::Cas(false))
        );
    }

    // Snapshots carry the whole state: what one node encodes another decodes identically.
    #[test]
    fn store_round_trips_through_its_encoding() {
        let mut store = KvStore::default();
        store.apply(&command(
            1,
            1,
            KvInput::Put {
                key: Key(0),
                value: 5,
            },
        ));
        store.apply(&command(
            3,
            7,
            KvInput::Cas {
                key: Key(2),
                expected: None,
                value: 6,
            },
        ));
        let decoded = KvStore::decode(&store.encode()).expect("own encoding");
        assert_eq!(decoded, store);
        assert_eq!(decoded.digest(), store.digest());
        assert_ne!(KvStore::default().digest(), store.digest());
    }

    proptest! {
        // Garbage never panics the decoders (they read entry payloads and snapshot data).
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let bytes = Bytes::from(bytes);
            let _ = Command::decode(&bytes);
            let _ = KvStore::decode(&bytes);
        }

        // Every valid command survives the round trip.
        #[test]
        fn commands_round_trip(client in any::<u32>(), op in any::<u64>(), key in 0..KEY_COUNT,
                               expected in any::<Option<u64>>(), value in any::<u64>(), kind in 0u8..3) {
            let key = Key(key);
            let input = match kind {
                0 => KvInput::Put { key, value },
                1 => KvInput::Get { key },
                _ => KvInput::Cas { key, expected, value },
            };
            let c = command(client, op, input);
            prop_assert_eq!(Command::decode(&c.encode()), Ok(c));
        }
    }
}
