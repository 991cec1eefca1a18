//! `KeyIndex`: the revisions of one key, grouped into generations (etcd's `keyIndex`), and the
//! lookups built on them: the revision holding the key's version at a revision, the live
//! version, the version a change replaced, and what compaction keeps. The index tree stores one
//! per key as an rkyv archive (docs/design/btree-format.md, "Values"), so a restart reads it
//! in place instead of rebuilding it.
//!
//! A generation is one life of the key: from the put that creates it to the delete (tombstone)
//! that ends it. A delete closes the current generation and opens an empty one; the next put
//! fills it. Worked example, key "foo":
//!
//! ```text
//! put(2.0) put(3.0) delete(4.0) put(5.0) delete(6.0)      (revision = main.sub)
//!
//! generations, oldest first:        version of each put:
//!   {2.0, 3.0, 4.0(t)}                2.0 -> 1, 3.0 -> 2      (tombstone 4.0 ends it)
//!   {5.0, 6.0(t)}                     5.0 -> 1                (version restarts)
//!   {}                                (open, empty: "foo" is absent now)
//!
//! get(at): the newest revision <= at in the generation alive at `at`
//!   get(1) = none   get(2) = 2.0   get(3) = 3.0
//!   get(4) = none (deleted at 4)   get(5) = 5.0   get(6) = get(99) = none
//! ```
//!
//! Compaction at revision `c` removes every revision `<= c` except the newest one `<= c`, and
//! that one too if it is a tombstone; generations left empty go, and a key left with only the
//! open empty generation leaves the index:
//!
//! ```text
//! compact(3): {3.0, 4.0(t)} {5.0, 6.0(t)} {}      2.0 superseded by 3.0
//! compact(4): {5.0, 6.0(t)} {}                    newest <= 4 is the tombstone 4.0: all go
//! compact(5): {5.0, 6.0(t)} {}                    5.0 is the newest <= 5: kept
//! compact(6): {}  -> "foo" leaves the index       newest <= 6 is the tombstone 6.0
//! ```
//!
//! Reads at any revision `>= c` give the same answer before and after `compact(c)`: each such
//! read returns the newest revision `<= at` of its generation, which compaction keeps. Versions
//! survive compaction because each generation counts its puts instead of deriving the count
//! from the revisions it still holds.

use bytes::Bytes;
use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::revision::Revision;
use crate::error::Corruption;

/// The revisions of one key; see the module docs.
///
/// Invariants (checked by [`KeyIndex::check`]):
/// 1. There is at least one generation; only the last one may be empty, and not all are empty.
/// 2. Revisions strictly increase across all generations, oldest first.
/// 3. Every generation but the last ends with its tombstone; the last holds none.
/// 4. A generation's `version` is at least the number of puts it still holds.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct KeyIndex {
    generations: Vec<Generation>,
}

/// One life of a key: its puts, then (unless it is the last generation) the tombstone.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Generation {
    /// Main revision of the put that created this generation (the key's `create_revision`);
    /// kept after compaction removes that put.
    create_revision: i64,
    /// Puts and tombstone this generation has had, counting those compaction removed: the
    /// version of its newest put is `version`, of the one before `version - 1`, and so on.
    version: i64,
    /// Revisions still held, oldest first.
    revisions: Vec<Rev>,
}

/// A [`Revision`] as a key index stores it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
struct Rev {
    main: i64,
    sub: i64,
}

impl From<Revision> for Rev {
    fn from(revision: Revision) -> Self {
        Rev {
            main: revision.main,
            sub: revision.sub,
        }
    }
}

impl From<Rev> for Revision {
    fn from(rev: Rev) -> Self {
        Revision::new(rev.main, rev.sub)
    }
}

/// What compacting one key does: revisions to remove from the record tree, and the key index
/// that stays (`None`: the key leaves the index).
pub(crate) struct KeyCompaction {
    /// The store's compaction counts these and removes the records in a second pass, by what
    /// the compacted index no longer names.
    pub(crate) removed: Vec<Revision>,
    pub(crate) remaining: Option<KeyIndex>,
}

/// The fields of a generation, decoded ([`Generation`]) or read in place from its archive
/// ([`ArchivedGeneration`]): the checks and the reads at a revision run on either, so a read
/// needs no decoding (and no allocation).
trait GenerationFields {
    fn create_revision(&self) -> i64;
    fn version(&self) -> i64;
    fn revision_count(&self) -> usize;
    /// Revision `i < revision_count()`, oldest first.
    fn revision(&self, i: usize) -> Rev;
}

impl GenerationFields for Generation {
    fn create_revision(&self) -> i64 {
        self.create_revision
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn revision_count(&self) -> usize {
        self.revisions.len()
    }
    fn revision(&self, i: usize) -> Rev {
        self.revisions[i]
    }
}

impl GenerationFields for ArchivedGeneration {
    fn create_revision(&self) -> i64 {
        self.create_revision.to_native()
    }
    fn version(&self) -> i64 {
        self.version.to_native()
    }
    fn revision_count(&self) -> usize {
        self.revisions.len()
    }
    fn revision(&self, i: usize) -> Rev {
        let rev = &self.revisions[i];
        Rev {
            main: rev.main.to_native(),
            sub: rev.sub.to_native(),
        }
    }
}

/// [`KeyIndex::check`] on any form of the generations.
fn check_generations<G: GenerationFields>(generations: &[G]) -> Result<(), &'static str> {
    let last = generations
        .len()
        .checked_sub(1)
        .ok_or("no generation (key index invariant 1)")?;
    if last == 0 && generations[0].revision_count() == 0 {
        return Err("an empty key index is kept in the index (key index invariant 1)");
    }
    let mut previous: Option<Rev> = None;
    for (i, generation) in generations.iter().enumerate() {
        let count = generation.revision_count();
        if i != last && count < 2 {
            return Err(
                "a closed generation lacks a put or its tombstone (key index invariants 1, 3)",
            );
        }
        for position in 0..count {
            let revision = generation.revision(position);
            if revision.main < 0 || revision.sub < 0 {
                return Err("a negative revision");
            }
            if previous.is_some_and(|p| p >= revision) {
                return Err("revisions do not strictly increase (key index invariant 2)");
            }
            previous = Some(revision);
        }
        let puts = count - usize::from(i != last);
        if !usize::try_from(generation.version()).is_ok_and(|v| v >= puts) {
            return Err("version below the puts held (key index invariant 4)");
        }
        if count > 0 && generation.create_revision() > generation.revision(0).main {
            return Err("created after its first revision held");
        }
    }
    Ok(())
}

/// [`KeyIndex::get`] on any form of the generations (which passed [`check_generations`]).
fn get_in<G: GenerationFields>(generations: &[G], at: i64) -> Option<Revision> {
    let last = generations.len().checked_sub(1)?;
    for (i, generation) in generations.iter().enumerate().rev() {
        let count = generation.revision_count();
        if count == 0 {
            continue;
        }
        let (first, newest) = (generation.revision(0), generation.revision(count - 1));
        if i != last && newest.main <= at {
            // The generation ended (tombstone) at or before `at`, and no later generation
            // had begun by then: the key was absent.
            return None;
        }
        if first.main <= at {
            return (0..count)
                .rev()
                .map(|position| generation.revision(position))
                .find(|r| r.main <= at)
                .map(Revision::from);
        }
    }
    None
}

impl Generation {
    fn empty() -> Self {
        Generation {
            create_revision: 0,
            version: 0,
            revisions: Vec::new(),
        }
    }

    /// Version of the key written at `revisions[position]`.
    fn version_at(&self, position: usize) -> i64 {
        let newer = i64::try_from(self.revisions.len() - 1 - position).expect("few revisions");
        self.version - newer
    }
}

impl KeyIndex {
    /// A key index whose first generation begins with the put at `revision` (version 1).
    pub(crate) fn with_put(revision: Revision) -> Self {
        KeyIndex {
            generations: vec![Generation {
                create_revision: revision.main,
                version: 1,
                revisions: vec![revision.into()],
            }],
        }
    }

    /// Encodes for the index tree (8-aligned bytes).
    pub(crate) fn encode(&self) -> Bytes {
        let bytes: AlignedVec = rkyv::to_bytes::<rancor::Error>(self)
            .expect("serializing plain structs into an AlignedVec cannot fail");
        Bytes::from_owner(bytes)
    }

    /// Decodes and validates bytes from the index tree (copied to aligned memory first if
    /// they are not 8-aligned). Invariants 1-4 are checked: a decoded index is safe to use.
    pub(crate) fn decode(bytes: &[u8]) -> Result<KeyIndex, Corruption> {
        let bad = |error: rancor::Error| Corruption::Value(format!("key index: {error}"));
        let index = if (bytes.as_ptr() as usize).is_multiple_of(8) {
            rkyv::from_bytes::<KeyIndex, rancor::Error>(bytes).map_err(bad)?
        } else {
            let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
            aligned.extend_from_slice(bytes);
            rkyv::from_bytes::<KeyIndex, rancor::Error>(&aligned).map_err(bad)?
        };
        index
            .check()
            .map_err(|reason| Corruption::Value(format!("key index: {reason}")))?;
        Ok(index)
    }

    fn current_mut(&mut self) -> &mut Generation {
        self.generations
            .last_mut()
            .expect("key index invariant 1: a key index has a generation")
    }

    fn revisions_newest_first(&self) -> impl Iterator<Item = Revision> + '_ {
        self.generations
            .iter()
            .rev()
            .flat_map(|g| g.revisions.iter().rev().map(|&r| Revision::from(r)))
    }

    /// The newest revision (put or tombstone).
    pub(crate) fn newest(&self) -> Revision {
        self.revisions_newest_first()
            .next()
            .expect("key index invariant 1")
    }

    /// The revision of the key's present version, with its create revision and version;
    /// `None` if the key is deleted.
    pub(crate) fn live(&self) -> Option<(Revision, i64, i64)> {
        let current = self.generations.last()?;
        let newest = current.revisions.last()?;
        Some(((*newest).into(), current.create_revision, current.version))
    }

    /// Records a put at `revision`, newer than every revision here; returns the create
    /// revision and version it writes.
    pub(crate) fn put(&mut self, revision: Revision) -> (i64, i64) {
        let newest = self.newest();
        // Key index invariant 2.
        assert!(revision > newest, "put at {revision} not after {newest}");
        let generation = self.current_mut();
        if generation.revisions.is_empty() {
            generation.create_revision = revision.main;
            generation.version = 0;
        }
        generation.revisions.push(revision.into());
        generation.version += 1;
        (generation.create_revision, generation.version)
    }

    /// Records a delete at `revision`: ends the current generation with the tombstone and
    /// opens an empty one. The caller deletes only live keys.
    pub(crate) fn tombstone(&mut self, revision: Revision) {
        assert!(
            self.live().is_some(),
            "tombstone at {revision} of a deleted key"
        );
        assert!(
            revision > self.newest(),
            "tombstone at {revision} not after the newest"
        );
        let generation = self.current_mut();
        generation.revisions.push(revision.into());
        generation.version += 1;
        // Key index invariant 3: the tombstone closes its generation.
        self.generations.push(Generation::empty());
    }

    /// The revision holding the key's version at revision `at` (its newest put `<= at`), or
    /// `None` if the key did not exist then. Exact for every `at` at or above the last
    /// compaction.
    pub(crate) fn get(&self, at: i64) -> Option<Revision> {
        get_in(&self.generations, at)
    }

    /// [`KeyIndex::get`] on the stored bytes of a key index, read in place: validated as
    /// [`KeyIndex::decode`] validates (rkyv's checks, then invariants 1-4), without decoding
    /// (the read path of ranges: no allocation per key).
    pub(crate) fn stored_get(bytes: &[u8], at: i64) -> Result<Option<Revision>, Corruption> {
        let bad = |error: rancor::Error| Corruption::Value(format!("key index: {error}"));
        let read = |bytes: &[u8]| {
            let archived = rkyv::access::<ArchivedKeyIndex, rancor::Error>(bytes).map_err(bad)?;
            let generations = archived.generations.as_slice();
            check_generations(generations)
                .map_err(|reason| Corruption::Value(format!("key index: {reason}")))?;
            Ok(get_in(generations, at))
        };
        if (bytes.as_ptr() as usize).is_multiple_of(8) {
            return read(bytes);
        }
        let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        read(&aligned)
    }

    /// The revision `revision` replaced: the one before it in its generation. `None` if
    /// `revision` created its generation, compaction removed the one before, or `revision` is
    /// not held here.
    pub(crate) fn previous(&self, revision: Revision) -> Option<Revision> {
        let revision = Rev::from(revision);
        for generation in &self.generations {
            if let Ok(position) = generation.revisions.binary_search(&revision) {
                return position
                    .checked_sub(1)
                    .map(|p| generation.revisions[p].into());
            }
        }
        None
    }

    /// Create revision and version of the put at `revision` (`None` for a tombstone or a
    /// revision not held here).
    pub(crate) fn version_of(&self, revision: Revision) -> Option<(i64, i64)> {
        let revision = Rev::from(revision);
        let last = self.generations.len() - 1;
        for (i, generation) in self.generations.iter().enumerate() {
            if let Ok(position) = generation.revisions.binary_search(&revision) {
                let tombstone = i != last && position == generation.revisions.len() - 1;
                return (!tombstone)
                    .then(|| (generation.create_revision, generation.version_at(position)));
            }
        }
        None
    }

    /// Whether `revision` is held here.
    pub(crate) fn names(&self, revision: Revision) -> bool {
        let revision = Rev::from(revision);
        self.generations
            .iter()
            .any(|generation| generation.revisions.binary_search(&revision).is_ok())
    }

    /// Every revision held, oldest first, each with whether it is a tombstone.
    pub(crate) fn revisions(&self) -> Vec<(Revision, bool)> {
        let last = self.generations.len() - 1;
        let mut out = Vec::new();
        for (i, generation) in self.generations.iter().enumerate() {
            let tombstone_position = if i == last {
                None
            } else {
                generation.revisions.len().checked_sub(1)
            };
            for (position, revision) in generation.revisions.iter().enumerate() {
                out.push(((*revision).into(), Some(position) == tombstone_position));
            }
        }
        out
    }

    /// What compaction at revision `at` does to this key (see the module docs); `None` when it
    /// removes nothing. Pure: the caller applies the result.
    pub(crate) fn compact(&self, at: i64) -> Option<KeyCompaction> {
        let last = self.generations.len() - 1;
        // The first generation still alive at `at`: its tombstone is after `at`, or it is the
        // open last one. Every generation before it ended at or before `at`.
        let alive = (0..last)
            .find(|&i| {
                self.generations[i]
                    .revisions
                    .last()
                    .is_some_and(|t| t.main > at)
            })
            .unwrap_or(last);
        let generation = &self.generations[alive];
        // Keep its newest revision <= at (the version readers at `at` see) and what follows.
        let keep_from = generation
            .revisions
            .iter()
            .rposition(|r| r.main <= at)
            .unwrap_or(0);
        if alive == 0 && keep_from == 0 {
            return None;
        }
        let mut removed: Vec<Revision> = self.generations[..alive]
            .iter()
            .flat_map(|g| g.revisions.iter().map(|&r| Revision::from(r)))
            .collect();
        removed.extend(
            generation.revisions[..keep_from]
                .iter()
                .map(|&r| Revision::from(r)),
        );
        let kept = Generation {
            create_revision: generation.create_revision,
            version: generation.version,
            revisions: generation.revisions[keep_from..].to_vec(),
        };
        if alive != last {
            // A generation alive at `at` keeps a put before its tombstone (which is after `at`).
            assert!(
                kept.revisions.len() >= 2,
                "compaction kept a lone tombstone"
            );
        }
        let remaining = if alive == last && kept.revisions.is_empty() {
            None
        } else {
            let mut generations = Vec::with_capacity(self.generations.len() - alive);
            generations.push(kept);
            generations.extend_from_slice(&self.generations[alive + 1..]);
            Some(KeyIndex { generations })
        };
        Some(KeyCompaction { removed, remaining })
    }

    /// Verifies invariants 1-4.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        check_generations(&self.generations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// The module docs' example: put 2, put 3, delete 4, put 5, delete 6.
    fn example() -> KeyIndex {
        let mut index = KeyIndex::with_put(rev(2));
        index.put(rev(3));
        index.tombstone(rev(4));
        index.put(rev(5));
        index.tombstone(rev(6));
        index
    }

    fn generations(index: &KeyIndex) -> Vec<Vec<i64>> {
        index
            .generations
            .iter()
            .map(|g| g.revisions.iter().map(|r| r.main).collect())
            .collect()
    }

    fn get(index: &KeyIndex, at: i64) -> Option<i64> {
        index.get(at).map(|revision| revision.main)
    }

    // Guards the generation layout etcd's keyIndex documents: a delete closes the generation
    // with its tombstone and opens an empty one.
    #[test]
    fn deletes_close_generations_as_in_the_worked_example() {
        let index = example();
        assert_eq!(generations(&index), vec![vec![2, 3, 4], vec![5, 6], vec![]]);
        assert!(index.live().is_none());
        assert_eq!(index.newest(), rev(6));
        index.check().expect("example is well formed");
    }

    // Guards findGeneration: a read inside a gap between generations sees no key.
    #[test]
    fn get_answers_as_in_the_worked_example() {
        let index = example();
        let answers: Vec<Option<i64>> = (1..=7).map(|at| get(&index, at)).collect();
        assert_eq!(
            answers,
            vec![None, Some(2), Some(3), None, Some(5), None, None]
        );
    }

    #[test]
    fn versions_restart_in_each_generation() {
        let index = example();
        assert_eq!(index.version_of(rev(2)), Some((2, 1)));
        assert_eq!(index.version_of(rev(3)), Some((2, 2)));
        assert_eq!(index.version_of(rev(4)), None, "a tombstone has no version");
        assert_eq!(index.version_of(rev(5)), Some((5, 1)));
    }

    #[test]
    fn put_returns_the_create_revision_and_version_it_writes() {
        let mut index = KeyIndex::with_put(rev(2));
        assert_eq!(index.put(rev(3)), (2, 2));
        index.tombstone(rev(4));
        assert_eq!(index.put(rev(5)), (5, 1), "a new generation");
        assert_eq!(index.live(), Some((rev(5), 5, 1)));
    }

    #[test]
    fn previous_is_the_revision_a_change_replaced_within_its_generation() {
        let index = example();
        assert_eq!(index.previous(rev(2)), None);
        assert_eq!(index.previous(rev(3)), Some(rev(2)));
        assert_eq!(index.previous(rev(4)), Some(rev(3)));
        assert_eq!(
            index.previous(rev(5)),
            None,
            "a new generation replaced nothing"
        );
    }

    // Guards keyIndex.compact's rules step by step on the worked example, including the
    // removal of a tombstone that is the newest revision at the compaction point.
    #[test]
    fn compact_follows_the_worked_example() {
        let index = example();
        assert!(index.compact(1).is_none(), "nothing at or below 1");
        assert!(index.compact(2).is_none(), "2.0 is the newest <= 2: kept");

        let c3 = index.compact(3).expect("2.0 is superseded");
        assert_eq!(c3.removed, vec![rev(2)]);
        let r3 = c3.remaining.expect("key stays");
        assert_eq!(generations(&r3), vec![vec![3, 4], vec![5, 6], vec![]]);

        let c4 = r3.compact(4).expect("tombstone 4.0 is the newest <= 4");
        assert_eq!(c4.removed, vec![rev(3), rev(4)]);
        let r4 = c4.remaining.expect("key stays");
        assert_eq!(generations(&r4), vec![vec![5, 6], vec![]]);

        assert!(r4.compact(5).is_none(), "5.0 is the newest <= 5: kept");

        let c6 = r4.compact(6).expect("tombstone 6.0 is the newest <= 6");
        assert_eq!(c6.removed, vec![rev(5), rev(6)]);
        assert!(c6.remaining.is_none(), "the key leaves the index");
    }

    #[test]
    fn compact_keeps_answers_at_and_above_the_compaction_revision() {
        let index = example();
        for at_compact in 1..=6 {
            let compacted = match index.compact(at_compact) {
                None => index.clone(),
                Some(KeyCompaction {
                    remaining: Some(kept),
                    ..
                }) => kept,
                Some(KeyCompaction {
                    remaining: None, ..
                }) => {
                    assert!((at_compact..=8).all(|at| get(&index, at).is_none()));
                    continue;
                }
            };
            for at in at_compact..=8 {
                assert_eq!(
                    get(&compacted, at),
                    get(&index, at),
                    "compact({at_compact}) get({at})"
                );
            }
            for (revision, tombstone) in compacted.revisions() {
                if !tombstone {
                    assert_eq!(compacted.version_of(revision), index.version_of(revision));
                }
            }
        }
    }

    #[test]
    fn compact_keeps_the_latest_revision_of_a_live_key_and_its_version() {
        let mut index = KeyIndex::with_put(rev(2));
        index.put(rev(3));
        index.put(rev(7));
        let compaction = index.compact(5).expect("2.0 is superseded");
        assert_eq!(compaction.removed, vec![rev(2)]);
        let kept = compaction.remaining.expect("live key stays");
        assert_eq!(generations(&kept), vec![vec![3, 7]]);
        assert_eq!(
            kept.version_of(rev(3)),
            Some((2, 2)),
            "version counts removed puts"
        );
        assert_eq!(
            kept.previous(rev(3)),
            None,
            "the version 3.0 replaced is gone"
        );
    }

    #[test]
    #[should_panic(expected = "not after")]
    fn put_at_an_older_revision_panics() {
        KeyIndex::with_put(rev(5)).put(rev(4));
    }

    #[test]
    #[should_panic(expected = "of a deleted key")]
    fn tombstone_of_a_deleted_key_panics() {
        let mut index = KeyIndex::with_put(rev(5));
        index.tombstone(rev(6));
        index.tombstone(rev(7));
    }

    #[test]
    fn several_changes_in_one_transaction_use_sub_revisions() {
        let mut index = KeyIndex::with_put(Revision::new(3, 0));
        index.put(Revision::new(3, 1));
        index.tombstone(Revision::new(3, 2));
        index.put(Revision::new(3, 3));
        assert_eq!(generations(&index), vec![vec![3, 3, 3], vec![3]]);
        assert_eq!(index.get(3), Some(Revision::new(3, 3)));
        assert_eq!(index.version_of(Revision::new(3, 3)), Some((3, 1)));
    }

    // Pins the stored layout (docs/design/btree-format.md, "Values"); see the record test.
    #[test]
    fn key_index_layout_is_pinned() {
        let mut index = KeyIndex::with_put(Revision::new(2, 0));
        index.tombstone(Revision::new(3, 1));
        #[rustfmt::skip]
        let expected: [u8; 88] = [
            2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // revision 2.0
            3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, // revision 3.1
            2, 0, 0, 0, 0, 0, 0, 0,                         // generation 0: create_revision
            2, 0, 0, 0, 0, 0, 0, 0,                         //   version
            208, 255, 255, 255, 2, 0, 0, 0,                 //   revisions: offset -48, 2
            0, 0, 0, 0, 0, 0, 0, 0,                         // generation 1 (empty)
            0, 0, 0, 0, 0, 0, 0, 0,
            216, 255, 255, 255, 0, 0, 0, 0,                 //   revisions: none
            208, 255, 255, 255, 2, 0, 0, 0,                 // root: generations at 32, 2
        ];
        assert_eq!(&index.encode()[..], &expected[..]);
    }

    // The stored form round-trips, and bytes breaking an invariant are rejected on decode.
    #[test]
    fn encoding_round_trips_and_decode_rejects_broken_invariants() {
        let index = example();
        assert_eq!(KeyIndex::decode(&index.encode()), Ok(index));
        let broken = KeyIndex {
            generations: vec![Generation::empty()],
        };
        assert!(KeyIndex::decode(&broken.encode()).is_err());
        assert!(KeyIndex::stored_get(&broken.encode(), 5).is_err());
        let encoded = example().encode();
        for i in 0..encoded.len() {
            let mut bad = encoded.to_vec();
            bad[i] ^= 0x5a;
            // Reading in place accepts exactly what decoding accepts, with the same answers.
            let decoded = KeyIndex::decode(&bad);
            for at in 0..8 {
                let stored = KeyIndex::stored_get(&bad, at);
                match &decoded {
                    Ok(index) => assert_eq!(stored, Ok(index.get(at)), "byte {i}"),
                    Err(_) => assert!(stored.is_err(), "byte {i} at {at}"),
                }
            }
        }
    }

    // Guards the read path of ranges: the in-place read answers as the decoded index, for
    // every revision, on indexes of one to several generations, also from unaligned bytes.
    #[test]
    fn stored_get_answers_as_get_at_every_revision() {
        let mut indexes = vec![example(), KeyIndex::with_put(rev(3))];
        let mut long = KeyIndex::with_put(rev(1));
        for main in 2..40 {
            if main % 7 == 0 {
                long.tombstone(rev(main));
            } else {
                long.put(rev(main));
            }
        }
        indexes.push(long);
        for index in indexes {
            let encoded = index.encode();
            let mut unaligned = vec![0u8];
            unaligned.extend_from_slice(&encoded);
            for at in 0..45 {
                assert_eq!(KeyIndex::stored_get(&encoded, at), Ok(index.get(at)));
                assert_eq!(KeyIndex::stored_get(&unaligned[1..], at), Ok(index.get(at)));
            }
        }
    }
}
