//! `KeyIndex`: the revisions of one key, grouped into generations (etcd's `keyIndex`), and the
//! lookups built on them: the revision holding the key's version at a revision, the live
//! version, the version a change replaced, and what compaction keeps.
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
//!
//! Representation: most keys hold one put (a new key; after compaction, nearly every key), so
//! that case is `KeyIndex::Single`, stored inline in the index tree without an allocation; the
//! rest is `KeyIndex::Full`. Both keep the record of the newest revision, so reads at the
//! current revision and puts (which need the previous version) skip the record tree.

use std::sync::Arc;

use super::record::Record;
use super::revision::Revision;

/// The revisions of one key; see the module docs. Cloning is O(1) (one `Arc` increment).
///
/// Invariants (checked by [`KeyIndex::check`]):
/// 1. There is at least one generation; only the last one may be empty, and not all are empty.
/// 2. Revisions strictly increase across all generations, oldest first.
/// 3. Every generation but the last ends with its tombstone; the last holds none.
/// 4. A generation's `version` is at least the number of puts it still holds, and equals the
///    version recorded by its newest put.
/// 5. The cached newest record is the record of the newest revision.
#[derive(Clone, Debug)]
pub(crate) enum KeyIndex {
    /// One generation holding one put, whose version and create revision are its record's.
    Single {
        revision: Revision,
        record: Arc<Record>,
    },
    /// Any other history.
    Full(Arc<Generations>),
}

/// The general form of a [`KeyIndex`].
#[derive(Clone, Debug)]
pub(crate) struct Generations {
    generations: Vec<Generation>,
    /// Record of the newest revision (put or tombstone).
    newest_record: Arc<Record>,
}

/// One life of a key: its puts, then (unless it is the last generation) the tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Generation {
    /// Main revision of the put that created this generation (the key's `create_revision`);
    /// kept after compaction removes that put.
    create_revision: i64,
    /// Puts and tombstone this generation has had, counting those compaction removed: the
    /// version of its newest put is `version`, of the one before `version - 1`, and so on.
    version: i64,
    /// The revisions still stored, ascending.
    revisions: Vec<Revision>,
}

/// A revision found by [`KeyIndex::get`], with its record when the index has it at hand.
pub(crate) struct Found<'a> {
    pub(crate) revision: Revision,
    /// `Some` when `revision` is the newest one; otherwise look it up in the record tree.
    pub(crate) record: Option<&'a Arc<Record>>,
}

/// What [`KeyIndex::compact`] changes: revisions whose records go, and the key index that
/// stays (`None`: the key leaves the index).
#[derive(Debug)]
pub(crate) struct KeyCompaction {
    pub(crate) removed: Vec<Revision>,
    pub(crate) remaining: Option<KeyIndex>,
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
    /// A key index whose first generation begins with the put at `revision`.
    pub(crate) fn with_put(revision: Revision, record: Arc<Record>) -> Self {
        assert!(!record.is_tombstone(), "a key index begins with a put");
        assert_eq!(
            record.version, 1,
            "the put beginning a key writes version 1"
        );
        KeyIndex::Single { revision, record }
    }

    /// The newest revision (put or tombstone) and its record.
    pub(crate) fn newest(&self) -> (Revision, &Arc<Record>) {
        match self {
            KeyIndex::Single { revision, record } => (*revision, record),
            KeyIndex::Full(full) => {
                let newest = full
                    .revisions_newest_first()
                    .next()
                    .expect("key index invariant 1");
                (newest, &full.newest_record)
            }
        }
    }

    /// The revision and record of the key's present version; `None` if the key is deleted.
    pub(crate) fn live(&self) -> Option<(Revision, &Arc<Record>)> {
        let (revision, record) = self.newest();
        (!record.is_tombstone()).then_some((revision, record))
    }

    /// The general form, for a change (copied first if a read view shares it).
    fn full_mut(&mut self) -> &mut Generations {
        if let KeyIndex::Single { revision, record } = self {
            let generation = Generation {
                create_revision: record.create_revision,
                version: record.version,
                revisions: vec![*revision],
            };
            let full = Generations {
                generations: vec![generation],
                newest_record: Arc::clone(record),
            };
            *self = KeyIndex::Full(Arc::new(full));
        }
        match self {
            KeyIndex::Full(full) => Arc::make_mut(full),
            KeyIndex::Single { .. } => unreachable!("converted above"),
        }
    }

    /// Records a put at `revision`, newer than every revision here. `record` carries the
    /// version and create revision the caller derived from [`KeyIndex::live`].
    pub(crate) fn put(&mut self, revision: Revision, record: Arc<Record>) {
        let newest = self.newest().0;
        // Key index invariant 2.
        assert!(revision > newest, "put at {revision} not after {newest}");
        assert!(
            !record.is_tombstone(),
            "put of a tombstone record at {revision}"
        );
        let full = self.full_mut();
        let generation = full.current_mut();
        if generation.revisions.is_empty() {
            generation.create_revision = revision.main;
            generation.version = 0;
            // Most generations hold few revisions: no room for Vec's default four.
            generation.revisions.reserve_exact(1);
        }
        generation.revisions.push(revision);
        generation.version += 1;
        // Key index invariant 4.
        assert_eq!(
            record.version, generation.version,
            "put at {revision} writes the next version"
        );
        assert_eq!(
            record.create_revision, generation.create_revision,
            "put at {revision}"
        );
        full.newest_record = record;
    }

    /// Records a delete at `revision`: ends the current generation with the tombstone and
    /// opens an empty one. The caller deletes only live keys.
    pub(crate) fn tombstone(&mut self, revision: Revision, record: Arc<Record>) {
        assert!(
            self.live().is_some(),
            "tombstone at {revision} of a deleted key"
        );
        assert!(
            revision > self.newest().0,
            "tombstone at {revision} not after the newest"
        );
        assert!(
            record.is_tombstone(),
            "tombstone at {revision} with a put record"
        );
        let full = self.full_mut();
        let generation = full.current_mut();
        generation.revisions.push(revision);
        generation.version += 1;
        full.newest_record = record;
        // Key index invariant 3: the tombstone closes its generation.
        full.generations.reserve_exact(1);
        full.generations.push(Generation::empty());
    }

    /// The revision holding the key's version at revision `at` (its newest put `<= at`), or
    /// `None` if the key did not exist then. Exact for every `at` at or above the last
    /// compaction.
    pub(crate) fn get(&self, at: i64) -> Option<Found<'_>> {
        let (newest, record) = self.newest();
        if newest.main <= at {
            // The common read, at the current revision: the newest change decides.
            return (!record.is_tombstone()).then_some(Found {
                revision: newest,
                record: Some(record),
            });
        }
        match self {
            KeyIndex::Single { .. } => None,
            KeyIndex::Full(full) => full.get(at).map(|revision| Found {
                revision,
                record: None,
            }),
        }
    }

    /// The revision `revision` replaced: the one before it in its generation. `None` if
    /// `revision` created its generation or compaction removed the one before. Panics if
    /// `revision` is not held here.
    pub(crate) fn previous(&self, revision: Revision) -> Option<Revision> {
        match self {
            KeyIndex::Single { revision: only, .. } => {
                assert_eq!(
                    *only, revision,
                    "revision {revision} is not in this key index"
                );
                None
            }
            KeyIndex::Full(full) => full.previous(revision),
        }
    }

    /// Create revision and version of the put at `revision` (`None` for a tombstone or a
    /// revision not held here).
    pub(crate) fn version_of(&self, revision: Revision) -> Option<(i64, i64)> {
        match self {
            KeyIndex::Single {
                revision: only,
                record,
            } => (*only == revision).then_some((record.create_revision, record.version)),
            KeyIndex::Full(full) => full.version_of(revision),
        }
    }

    /// Every revision held, oldest first, each with whether it is a tombstone.
    pub(crate) fn revisions(&self) -> Vec<(Revision, bool)> {
        match self {
            KeyIndex::Single { revision, .. } => vec![(*revision, false)],
            KeyIndex::Full(full) => full.revisions(),
        }
    }

    /// What compaction at revision `at` does to this key (see the module docs); `None` when it
    /// removes nothing. Pure: the caller applies the result.
    pub(crate) fn compact(&self, at: i64) -> Option<KeyCompaction> {
        match self {
            // A single put is the newest revision <= at, or after at: kept either way.
            KeyIndex::Single { .. } => None,
            KeyIndex::Full(full) => full.compact(at),
        }
    }

    /// Verifies the numbered invariants; `record_of` looks up the record tree.
    pub(crate) fn check<'a>(
        &'a self,
        record_of: impl Fn(Revision) -> Option<&'a Arc<Record>>,
    ) -> Result<(), &'static str> {
        let (newest, cached) = self.newest();
        if !record_of(newest).is_some_and(|stored| Arc::ptr_eq(stored, cached)) {
            return Err("cached newest record is not the stored one (key index invariant 5)");
        }
        match self {
            KeyIndex::Single { record, .. } if record.is_tombstone() => {
                Err("a single revision is a tombstone (key index invariant 3)")
            }
            KeyIndex::Single { .. } => Ok(()),
            KeyIndex::Full(full) => full.check(),
        }
    }
}

impl Generations {
    fn current_mut(&mut self) -> &mut Generation {
        self.generations
            .last_mut()
            .expect("key index invariant 1: a key index has a generation")
    }

    fn revisions_newest_first(&self) -> impl Iterator<Item = Revision> + '_ {
        self.generations
            .iter()
            .rev()
            .flat_map(|g| g.revisions.iter().rev().copied())
    }

    fn get(&self, at: i64) -> Option<Revision> {
        let last = self.generations.len() - 1;
        for (i, generation) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(newest)) =
                (generation.revisions.first(), generation.revisions.last())
            else {
                continue;
            };
            if i != last && newest.main <= at {
                // The generation ended (tombstone) at or before `at`, and no later generation
                // had begun by then: the key was absent.
                return None;
            }
            if first.main <= at {
                return generation
                    .revisions
                    .iter()
                    .rev()
                    .find(|r| r.main <= at)
                    .copied();
            }
        }
        None
    }

    fn previous(&self, revision: Revision) -> Option<Revision> {
        for generation in &self.generations {
            if let Ok(position) = generation.revisions.binary_search(&revision) {
                return position.checked_sub(1).map(|p| generation.revisions[p]);
            }
        }
        panic!("revision {revision} is not in this key index");
    }

    fn version_of(&self, revision: Revision) -> Option<(i64, i64)> {
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

    fn revisions(&self) -> Vec<(Revision, bool)> {
        let last = self.generations.len() - 1;
        let mut out = Vec::new();
        for (i, generation) in self.generations.iter().enumerate() {
            let tombstone_position = if i == last {
                None
            } else {
                generation.revisions.len().checked_sub(1)
            };
            for (position, revision) in generation.revisions.iter().enumerate() {
                out.push((*revision, Some(position) == tombstone_position));
            }
        }
        out
    }

    fn compact(&self, at: i64) -> Option<KeyCompaction> {
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
            .flat_map(|g| g.revisions.iter().copied())
            .collect();
        removed.extend_from_slice(&generation.revisions[..keep_from]);
        // Built with exact capacities: compaction is when a key index shrinks for good.
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
        } else if alive == last && kept.revisions.len() == 1 {
            // What stays is one put, necessarily the newest revision.
            Some(KeyIndex::Single {
                revision: kept.revisions[0],
                record: Arc::clone(&self.newest_record),
            })
        } else {
            let mut generations = Vec::with_capacity(self.generations.len() - alive);
            generations.push(kept);
            generations.extend_from_slice(&self.generations[alive + 1..]);
            let newest_record = Arc::clone(&self.newest_record);
            Some(KeyIndex::Full(Arc::new(Generations {
                generations,
                newest_record,
            })))
        };
        Some(KeyCompaction { removed, remaining })
    }

    fn check(&self) -> Result<(), &'static str> {
        let last = self
            .generations
            .len()
            .checked_sub(1)
            .ok_or("no generation (key index invariant 1)")?;
        if last == 0 && self.generations[0].revisions.is_empty() {
            return Err("an empty key index is kept in the index (key index invariant 1)");
        }
        let mut previous: Option<Revision> = None;
        for (i, generation) in self.generations.iter().enumerate() {
            if i != last && generation.revisions.len() < 2 {
                return Err(
                    "a closed generation lacks a put or its tombstone (key index invariants 1, 3)",
                );
            }
            for revision in &generation.revisions {
                if previous.is_some_and(|p| p >= *revision) {
                    return Err("revisions do not strictly increase (key index invariant 2)");
                }
                previous = Some(*revision);
            }
            let puts = generation.revisions.len() - usize::from(i != last);
            if !usize::try_from(generation.version).is_ok_and(|v| v >= puts) {
                return Err("version below the puts held (key index invariant 4)");
            }
            let first = generation.revisions.first();
            if first.is_some_and(|first| generation.create_revision > first.main) {
                return Err("created after its first revision held");
            }
        }
        let newest_is_tombstone = self.generations[last].revisions.is_empty();
        if self.newest_record.is_tombstone() != newest_is_tombstone {
            return Err("cached newest record has the wrong kind (key index invariant 5)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// Builds a key index the way a write transaction does, deriving versions from `live`.
    #[derive(Default)]
    struct Builder {
        index: Option<KeyIndex>,
    }

    impl Builder {
        fn put(mut self, revision: Revision) -> Self {
            let live = self
                .index
                .as_ref()
                .and_then(KeyIndex::live)
                .map(|(_, r)| r.clone());
            let (create, version) = match live {
                Some(live) => (live.create_revision, live.version + 1),
                None => (revision.main, 1),
            };
            let record = Arc::new(Record::put(
                Bytes::from_static(b"foo"),
                Bytes::new(),
                create,
                version,
                0,
            ));
            match &mut self.index {
                Some(index) => index.put(revision, record),
                None => self.index = Some(KeyIndex::with_put(revision, record)),
            }
            self
        }

        fn tombstone(mut self, revision: Revision) -> Self {
            let record = Arc::new(Record::tombstone(Bytes::from_static(b"foo")));
            self.index
                .as_mut()
                .expect("a key to delete")
                .tombstone(revision, record);
            self
        }

        fn build(self) -> KeyIndex {
            self.index.expect("at least one put")
        }
    }

    /// The module docs' example: put 2, put 3, delete 4, put 5, delete 6.
    fn example() -> KeyIndex {
        Builder::default()
            .put(rev(2))
            .put(rev(3))
            .tombstone(rev(4))
            .put(rev(5))
            .tombstone(rev(6))
            .build()
    }

    fn generations(index: &KeyIndex) -> Vec<Vec<i64>> {
        match index {
            KeyIndex::Single { revision, .. } => vec![vec![revision.main]],
            KeyIndex::Full(full) => full
                .generations
                .iter()
                .map(|g| g.revisions.iter().map(|r| r.main).collect())
                .collect(),
        }
    }

    fn get(index: &KeyIndex, at: i64) -> Option<i64> {
        index.get(at).map(|found| found.revision.main)
    }

    // Guards the generation layout etcd's keyIndex documents: a delete closes the generation
    // with its tombstone and opens an empty one.
    #[test]
    fn deletes_close_generations_as_in_the_worked_example() {
        let index = example();
        assert_eq!(generations(&index), vec![vec![2, 3, 4], vec![5, 6], vec![]]);
        assert!(index.live().is_none());
        assert_eq!(index.newest().0, rev(6));
        if let KeyIndex::Full(full) = &index {
            full.check().expect("example is well formed");
        }
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
    fn get_at_or_after_the_newest_revision_uses_the_cached_record() {
        let index = Builder::default().put(rev(2)).put(rev(3)).build();
        let found = index.get(9).expect("live");
        assert_eq!(found.revision, rev(3));
        assert!(found.record.is_some_and(|r| r.version == 2));
        assert!(
            index.get(2).expect("live at 2").record.is_none(),
            "older: record tree lookup"
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
    fn compact_keeps_the_latest_revision_of_a_live_key() {
        let index = Builder::default()
            .put(rev(2))
            .put(rev(3))
            .put(rev(7))
            .build();
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

    // After compaction nearly every key holds one put: it must return to the inline form.
    #[test]
    fn compact_to_a_single_put_returns_to_the_inline_form() {
        let index = Builder::default()
            .put(rev(2))
            .put(rev(3))
            .put(rev(4))
            .build();
        let kept = index
            .compact(4)
            .expect("2.0 and 3.0 go")
            .remaining
            .expect("live");
        assert!(matches!(kept, KeyIndex::Single { revision, .. } if revision == rev(4)));
        assert_eq!(
            kept.version_of(rev(4)),
            Some((2, 3)),
            "version and create revision kept"
        );
        let reborn = Builder::default()
            .put(rev(2))
            .tombstone(rev(3))
            .put(rev(5))
            .build();
        let kept = reborn
            .compact(6)
            .expect("old generation goes")
            .remaining
            .expect("live");
        assert!(matches!(kept, KeyIndex::Single { revision, .. } if revision == rev(5)));
    }

    #[test]
    #[should_panic(expected = "not after")]
    fn put_at_an_older_revision_panics() {
        Builder::default().put(rev(5)).put(rev(4));
    }

    #[test]
    #[should_panic(expected = "of a deleted key")]
    fn tombstone_of_a_deleted_key_panics() {
        Builder::default()
            .put(rev(5))
            .tombstone(rev(6))
            .tombstone(rev(7));
    }

    #[test]
    fn several_changes_in_one_transaction_use_sub_revisions() {
        let index = Builder::default()
            .put(Revision::new(3, 0))
            .put(Revision::new(3, 1))
            .tombstone(Revision::new(3, 2))
            .put(Revision::new(3, 3))
            .build();
        assert_eq!(generations(&index), vec![vec![3, 3, 3], vec![3]]);
        assert_eq!(index.get(3).map(|f| f.revision), Some(Revision::new(3, 3)));
        assert_eq!(index.version_of(Revision::new(3, 3)), Some((3, 1)));
    }
}
