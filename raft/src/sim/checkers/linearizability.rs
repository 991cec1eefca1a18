//! Linearizability of the client history against the KV model, with the Wing & Gong /
//! Lowe search (as Knossos and porcupine implement it).
//!
//! Keys are independent registers, so the history is split per key (linearizability is
//! compositional, Herlihy & Wing §3.3) and each key's sub-history is searched alone. The
//! search keeps a list of call and return events in time order. The operations that may
//! come next are the calls before the first remaining return; it tries them earliest
//! return first (the model must accept each one's answer), and when none fits it backtracks
//! to the latest choice that has an untried alternative. Two reductions keep it fast:
//! an answered read or failed cas that the model accepts now is linearized now without
//! branching (sound when written values are unique, as the simulator's are: a state once
//! left never returns), and a cache of (linearized set, model state) prunes states
//! already explored; the set is stored as a 128-bit Zobrist fingerprint (XOR
//! of one random key per operation, updated in O(1)), so a collision is as likely as two
//! random 128-bit values meeting. Indeterminate operations return at infinity: a put or
//! cas with an unknown answer is accepted by the model wherever it is placed (a cas takes
//! effect only if its comparison holds there), so it may take effect at any time after its
//! invocation or, placed after everything else, in effect never. Indeterminate reads tell
//! nothing and are dropped.
//!
//! Worked example (one key, initially absent): A = put(1) over [0, 10], B = get -> 1 over
//! [2, 3], C = get -> nil over [4, 5]. Events: A call, B call, B ret, C call, C ret, A ret.
//! First candidates: A and B (before B's return), B first (earlier return); the model
//! refuses B (reads 1, state nil), so A, then B (reads 1: forced). Next candidates: only C
//! (A is done, C's return comes next), refused (reads nil, state 1): dead end; B was forced,
//! so undo B and A; A has no alternative left: not linearizable. Indeed B saw the put take
//! effect before C, which ran entirely after B, still saw nil.

use std::collections::{BTreeMap, HashSet};

use thiserror::Error;

use crate::sim::history::Operation;
use crate::sim::kv::{Key, KvInput, KvOutput};

/// Search steps allowed per key before giving up. A linearizable history of the simulator
/// takes about one step per operation (the earliest-return choice is almost always right);
/// exhausting the budget means the search is backtracking through combinations of
/// concurrent writes, which in practice only happens when no order exists. The bound also
/// caps the cache (at most one entry per step, ~40 bytes each).
pub const SEARCH_STEPS_MAX: u64 = 2_000_000;

/// What the search explored, for the run summary.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LinearizabilityStats {
    /// Keys checked.
    pub keys: usize,
    /// Operations checked (indeterminate reads excluded).
    pub operations: usize,
    /// Search steps over all keys.
    pub search_steps: u64,
}

/// Why a history was rejected.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum LinearizabilityError {
    /// No order of the key's operations respects both real time and the model.
    #[error(
        "history of k{} is not linearizable: at most {linearized_max} of {operations} \
         operations linearize; stuck at {stuck}; concurrent with it: {}",
        key.0,
        concurrent.iter().map(|op| op.to_string()).collect::<Vec<_>>().join("; ")
    )]
    NotLinearizable {
        /// The key whose sub-history fails.
        key: Key,
        /// Operations on that key.
        operations: usize,
        /// Most operations linearized by any attempt.
        linearized_max: usize,
        /// The operation whose return could not be reached in the deepest attempt.
        stuck: Box<Operation>,
        /// Operations overlapping `stuck` in time (at most 16), for the report.
        concurrent: Vec<Operation>,
    },
    /// The search hit its step budget without an answer (see [`SEARCH_STEPS_MAX`]).
    #[error(
        "history of k{} undecided after {search_steps} search steps ({operations} operations): \
         correct histories need about one step per operation, so it is almost certainly not \
         linearizable",
        key.0
    )]
    SearchExhausted {
        /// The key whose sub-history was too costly.
        key: Key,
        /// Operations on that key.
        operations: usize,
        /// Steps taken.
        search_steps: u64,
    },
}

/// Checks `history` against the KV model (every key initially absent).
pub fn check_history(history: &[Operation]) -> Result<LinearizabilityStats, LinearizabilityError> {
    check_history_with_budget(history, SEARCH_STEPS_MAX)
}

/// [`check_history`] with an explicit per-key step budget.
pub fn check_history_with_budget(
    history: &[Operation],
    search_steps_max: u64,
) -> Result<LinearizabilityStats, LinearizabilityError> {
    let mut by_key: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
    for op in history {
        let read = matches!(op.input, KvInput::Get { .. });
        if read && op.is_indeterminate() {
            continue;
        }
        by_key.entry(op.input.key()).or_default().push(*op);
    }
    let mut stats = LinearizabilityStats::default();
    for (key, ops) in &by_key {
        let mut search = Search::new(*key, ops, search_steps_max);
        stats.search_steps += search.run()?;
        stats.keys += 1;
        stats.operations += ops.len();
    }
    Ok(stats)
}

/// The model: the value of one key. Returns the state after `op` if the model accepts `op`
/// (with its answer) at `state`.
fn model_step(state: Option<u64>, op: &Operation) -> Option<Option<u64>> {
    match (op.input, op.output) {
        (KvInput::Put { value, .. }, Some(KvOutput::Put) | None) => Some(Some(value)),
        (KvInput::Get { .. }, Some(KvOutput::Get(read))) => (read == state).then_some(state),
        (
            KvInput::Cas {
                expected, value, ..
            },
            output,
        ) => {
            let swaps = state == expected;
            match output {
                None => Some(if swaps { Some(value) } else { state }),
                Some(KvOutput::Cas(swapped)) if swapped == swaps => {
                    Some(if swaps { Some(value) } else { state })
                }
                Some(_) => None,
            }
        }
        // An answer of the wrong kind, or an indeterminate read (filtered out before).
        _ => None,
    }
}

/// One random 128-bit key per operation (splitmix64, fixed seed: runs stay reproducible).
fn zobrist_keys(count: usize) -> Vec<u128> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..count)
        .map(|_| (u128::from(next()) << 64) | u128::from(next()))
        .collect()
}

/// True when no value is written twice (puts and cas values), which makes a state, once
/// left, never come back: the condition for linearizing accepted reads without branching.
fn written_values_are_unique(ops: &[Operation]) -> bool {
    let mut seen = HashSet::new();
    ops.iter().all(|op| match op.input {
        KvInput::Put { value, .. } | KvInput::Cas { value, .. } => seen.insert(value),
        KvInput::Get { .. } => true,
    })
}

/// One linearization choice on the search path.
#[derive(Debug)]
struct Frame {
    op: usize,
    state_before: Option<u64>,
    /// The alternatives at this point, and where to resume trying them (None: the choice
    /// was forced, there is nothing else to try here).
    candidates: Vec<usize>,
    next: Option<usize>,
}

/// One entry of the doubly linked event list. Index 0 is the head sentinel, the last index
/// the tail sentinel.
#[derive(Clone, Copy, Debug)]
struct Link {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

struct Search<'a> {
    key: Key,
    ops: &'a [Operation],
    links: Vec<Link>,
    call_of: Vec<usize>,
    return_of: Vec<usize>,
    search_steps_max: u64,
}

impl<'a> Search<'a> {
    fn new(key: Key, ops: &'a [Operation], search_steps_max: u64) -> Search<'a> {
        // (time, calls before returns at equal times, op): calls first is the permissive
        // reading of "simultaneous", as porcupine does.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke.0, false, i));
            events.push((op.complete.map_or(u64::MAX, |t| t.0), true, i));
        }
        events.sort_unstable();
        let tail = events.len() + 1;
        let mut links = vec![
            Link {
                op: usize::MAX,
                is_call: false,
                prev: 0,
                next: 1,
            };
            events.len() + 2
        ];
        let mut call_of = vec![0; ops.len()];
        let mut return_of = vec![0; ops.len()];
        for (position, &(_, is_return, op)) in events.iter().enumerate() {
            let index = position + 1;
            links[index] = Link {
                op,
                is_call: !is_return,
                prev: index - 1,
                next: index + 1,
            };
            if is_return {
                return_of[op] = index;
            } else {
                call_of[op] = index;
            }
        }
        links[tail].prev = tail - 1;
        links[tail].next = tail;
        Search {
            key,
            ops,
            links,
            call_of,
            return_of,
            search_steps_max,
        }
    }

    fn tail(&self) -> usize {
        self.links.len() - 1
    }

    fn unlink(&mut self, index: usize) {
        let Link { prev, next, .. } = self.links[index];
        self.links[prev].next = next;
        self.links[next].prev = prev;
    }

    fn relink(&mut self, index: usize) {
        let Link { prev, next, .. } = self.links[index];
        self.links[prev].next = index;
        self.links[next].prev = index;
    }

    /// Takes `op` out of the list (it is linearized).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        self.unlink(self.return_of[op]);
    }

    /// Undoes `lift(op)` (links go back in the reverse order they left).
    fn unlift(&mut self, op: usize) {
        self.relink(self.return_of[op]);
        self.relink(self.call_of[op]);
    }

    /// The operations that may be linearized next: the calls before the first return in
    /// the remaining list, earliest return first (a completed operation must come before
    /// everything invoked after it returned; trying the earliest deadline first makes the
    /// first choice right almost every time for a correct cluster).
    fn minimal_calls(&self) -> Vec<usize> {
        let mut calls = Vec::new();
        let mut entry = self.links[0].next;
        while entry != self.tail() && self.links[entry].is_call {
            calls.push(self.links[entry].op);
            entry = self.links[entry].next;
        }
        calls.sort_by_key(|&op| (self.ops[op].complete.map_or(u64::MAX, |t| t.0), op));
        calls
    }

    /// The operation whose return is first in the remaining list (what blocks progress).
    fn first_return(&self) -> usize {
        let mut entry = self.links[0].next;
        while entry != self.tail() && self.links[entry].is_call {
            entry = self.links[entry].next;
        }
        self.links[entry].op
    }

    /// True for an answered operation that leaves the state as it is (a read, a failed
    /// cas). With unique written values such an operation, if the model accepts it now,
    /// may be linearized now without trying the alternatives: the state it needs never
    /// comes back once changed, and placing it earlier moves nothing else.
    fn is_read_only(&self, op: usize) -> bool {
        matches!(
            self.ops[op].output,
            Some(KvOutput::Get(_)) | Some(KvOutput::Cas(false))
        )
    }

    /// Depth-first search over linearization orders; returns the steps taken.
    fn run(&mut self) -> Result<u64, LinearizabilityError> {
        let keys = zobrist_keys(self.ops.len());
        let force_reads = written_values_are_unique(self.ops);
        let mut linearized = 0u128;
        let mut cache: HashSet<(u128, Option<u64>)> = HashSet::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut state: Option<u64> = None;
        let mut deepest = (0usize, usize::MAX);
        let mut candidates = self.minimal_calls();
        let mut next = 0usize;
        let mut steps = 0u64;
        while self.links[0].next != self.tail() {
            steps += 1;
            if steps > self.search_steps_max {
                return Err(LinearizabilityError::SearchExhausted {
                    key: self.key,
                    operations: self.ops.len(),
                    search_steps: steps,
                });
            }
            let forced = (force_reads && next == 0)
                .then(|| {
                    candidates.iter().copied().find(|&op| {
                        self.is_read_only(op) && model_step(state, &self.ops[op]).is_some()
                    })
                })
                .flatten();
            let chosen = match forced {
                Some(op) => {
                    let next_state = state;
                    cache
                        .insert((linearized ^ keys[op], next_state))
                        .then_some((op, next_state))
                }
                None => self.next_choice(&candidates, &mut next, state, |op, next_state| {
                    cache.insert((linearized ^ keys[op], next_state))
                }),
            };
            if let Some((op, next_state)) = chosen {
                stack.push(Frame {
                    op,
                    state_before: state,
                    candidates: std::mem::take(&mut candidates),
                    next: if forced.is_some() { None } else { Some(next) },
                });
                linearized ^= keys[op];
                state = next_state;
                self.lift(op);
                candidates = self.minimal_calls();
                next = 0;
                continue;
            }
            // Dead end: undo choices until one has an untried alternative.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), self.first_return());
            }
            loop {
                let Some(frame) = stack.pop() else {
                    return Err(self.not_linearizable(deepest));
                };
                self.unlift(frame.op);
                linearized ^= keys[frame.op];
                state = frame.state_before;
                if let Some(resume) = frame.next {
                    candidates = frame.candidates;
                    next = resume;
                    break;
                }
            }
        }
        Ok(steps)
    }

    /// The next candidate from `next` on that the model accepts at `state` and whose
    /// resulting configuration is new (`fresh` records it).
    fn next_choice(
        &self,
        candidates: &[usize],
        next: &mut usize,
        state: Option<u64>,
        mut fresh: impl FnMut(usize, Option<u64>) -> bool,
    ) -> Option<(usize, Option<u64>)> {
        while let Some(&op) = candidates.get(*next) {
            *next += 1;
            if let Some(next_state) = model_step(state, &self.ops[op]) {
                if fresh(op, next_state) {
                    return Some((op, next_state));
                }
            }
        }
        None
    }

    fn not_linearizable(&self, (linearized_max, stuck): (usize, usize)) -> LinearizabilityError {
        let stuck = self.ops[stuck];
        let end = stuck.complete.map_or(u64::MAX, |t| t.0);
        let concurrent = self
            .ops
            .iter()
            .filter(|op| {
                op.invoke.0 <= end && op.complete.map_or(u64::MAX, |t| t.0) >= stuck.invoke.0
            })
            .filter(|op| **op != stuck)
            .take(16)
            .copied()
            .collect();
        LinearizabilityError::NotLinearizable {
            key: self.key,
            operations: self.ops.len(),
            linearized_max,
            stuck: Box::new(stuck),
            concurrent,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::sim::kv::{ClientId, OpId};
    use crate::sim::time::SimTime;

    const K: Key = Key(0);

    fn op(client: u32, input: KvInput, output: Option<KvOutput>, span: (u64, u64)) -> Operation {
        Operation {
            client: ClientId(client),
            op: OpId(span.0),
            input,
            output,
            invoke: SimTime(span.0),
            complete: output.map(|_| SimTime(span.1)),
        }
    }

    fn put(client: u32, value: u64, span: (u64, u64)) -> Operation {
        op(
            client,
            KvInput::Put { key: K, value },
            Some(KvOutput::Put),
            span,
        )
    }

    fn get(client: u32, read: Option<u64>, span: (u64, u64)) -> Operation {
        op(
            client,
            KvInput::Get { key: K },
            Some(KvOutput::Get(read)),
            span,
        )
    }

    fn cas(
        client: u32,
        expected: Option<u64>,
        value: u64,
        swapped: Option<bool>,
        span: (u64, u64),
    ) -> Operation {
        let input = KvInput::Cas {
            key: K,
            expected,
            value,
        };
        op(client, input, swapped.map(KvOutput::Cas), span)
    }

    // The module docs' worked example: a read after a newer read saw the older value.
    #[test]
    fn a_stale_read_after_a_fresh_one_is_rejected() {
        let history = [
            put(1, 1, (0, 10)),
            get(2, Some(1), (2, 3)),
            get(3, None, (4, 5)),
        ];
        let error = check_history(&history).expect_err("stale read");
        assert!(
            matches!(
                error,
                LinearizabilityError::NotLinearizable {
                    key: K,
                    operations: 3,
                    ..
                }
            ),
            "{error}"
        );
    }

    // Overlapping operations may take effect in either order.
    #[test]
    fn concurrent_operations_may_linearize_in_either_order() {
        let history = [
            put(1, 1, (0, 10)),
            put(2, 2, (1, 9)),
            get(3, Some(1), (11, 12)),
            get(3, Some(1), (13, 14)),
        ];
        assert!(check_history(&history).is_ok());
        let reversed = [
            put(1, 1, (0, 10)),
            put(2, 2, (1, 9)),
            get(3, Some(2), (11, 12)),
        ];
        assert!(check_history(&reversed).is_ok());
    }

    // A write acknowledged before a read began must be visible to it (a lost write).
    #[test]
    fn a_lost_acknowledged_write_is_rejected() {
        let history = [
            put(1, 1, (0, 1)),
            put(1, 2, (2, 3)),
            get(2, Some(1), (4, 5)),
        ];
        assert!(check_history(&history).is_err());
    }

    // An indeterminate write may take effect late, or never.
    #[test]
    fn indeterminate_writes_may_or_may_not_take_effect() {
        let pending = op(1, KvInput::Put { key: K, value: 7 }, None, (0, 0));
        let never = [pending, get(2, None, (5, 6)), get(2, None, (100, 101))];
        assert!(check_history(&never).is_ok());
        let late = [pending, get(2, None, (5, 6)), get(2, Some(7), (100, 101))];
        assert!(check_history(&late).is_ok());
        // But it cannot take effect before it was invoked.
        let early = [
            get(2, Some(7), (0, 1)),
            op(1, KvInput::Put { key: K, value: 7 }, None, (5, 0)),
        ];
        assert!(check_history(&early).is_err());
        // Nor un-happen once observed.
        let flicker = [pending, get(2, Some(7), (5, 6)), get(2, None, (7, 8))];
        assert!(check_history(&flicker).is_err());
    }

    // Compare-and-swap answers must agree with the value at their linearization point.
    #[test]
    fn cas_answers_must_match_the_state() {
        let ok = [
            put(1, 1, (0, 1)),
            cas(2, Some(1), 2, Some(true), (2, 3)),
            cas(3, Some(1), 3, Some(false), (4, 5)),
            get(1, Some(2), (6, 7)),
        ];
        assert!(check_history(&ok).is_ok());
        let double_swap = [
            put(1, 1, (0, 1)),
            cas(2, Some(1), 2, Some(true), (2, 3)),
            cas(3, Some(1), 3, Some(true), (4, 5)),
        ];
        assert!(check_history(&double_swap).is_err());
        // An indeterminate cas that could only have failed changes nothing.
        let maybe = [
            put(1, 1, (0, 1)),
            cas(2, Some(5), 2, None, (2, 0)),
            get(1, Some(1), (6, 7)),
        ];
        assert!(check_history(&maybe).is_ok());
    }

    // Keys are independent: a history fine on each key is fine overall, and the error names
    // the broken key.
    #[test]
    fn keys_are_checked_independently() {
        let k1 = Key(1);
        let history = [
            put(1, 1, (0, 1)),
            op(
                2,
                KvInput::Put { key: k1, value: 9 },
                Some(KvOutput::Put),
                (0, 1),
            ),
            op(
                3,
                KvInput::Get { key: k1 },
                Some(KvOutput::Get(None)),
                (2, 3),
            ),
            get(3, Some(1), (4, 5)),
        ];
        let error = check_history(&history).expect_err("k1 lost its put");
        assert!(matches!(error, LinearizabilityError::NotLinearizable { key, .. } if key == k1));
    }

    // The budget bounds the search and reports exhaustion, never a verdict.
    #[test]
    fn the_search_budget_is_enforced() {
        let history: Vec<Operation> = (0..20).map(|i| put(i, u64::from(i), (0, 100))).collect();
        let error = check_history_with_budget(&history, 5).expect_err("tiny budget");
        assert!(matches!(
            error,
            LinearizabilityError::SearchExhausted { .. }
        ));
    }

    // A pile-up (a cluster unavailable for a while, then many concurrent writes completing
    // together) must stay cheap: a plain WGL search tries the subsets of the 30 pending puts
    // in front of the read (2^30); forced reads and earliest-return-first make it linear.
    #[test]
    fn a_pile_up_of_concurrent_writes_is_checked_quickly() {
        let mut history = vec![put(0, 1000, (0, 1))];
        for i in 0..30u32 {
            history.push(put(
                i + 1,
                u64::from(i),
                (2 + u64::from(i), 100 + u64::from(i)),
            ));
        }
        history.push(get(40, Some(1000), (3, 50)));
        history.push(get(41, Some(29), (200, 201)));
        let stats = check_history(&history).expect("linearizable: puts in return order");
        assert!(stats.search_steps < 1_000, "{} steps", stats.search_steps);
        // Refuting a pile-up is still exponential (every order of the puts fails): with a
        // small budget the answer is "undecided", which fails a run just the same.
        history.push(get(42, Some(3), (300, 301)));
        assert!(
            check_history_with_budget(&history, 50_000).is_err(),
            "3 was overwritten before 200"
        );
    }

    /// A sequential execution of random operations against the real store model, with
    /// random overlap added around each operation's instant.
    fn executed_history(ops: &[(u8, u64)], widen: &[u64]) -> Vec<Operation> {
        let mut state: Option<u64> = None;
        let mut history = Vec::new();
        for (i, (&(kind, arg), &w)) in ops.iter().zip(widen).enumerate() {
            let at = 100 * (i as u64 + 2);
            let value = i as u64 + 1;
            let (input, output) = match kind % 3 {
                0 => {
                    state = Some(value);
                    (KvInput::Put { key: K, value }, KvOutput::Put)
                }
                1 => (KvInput::Get { key: K }, KvOutput::Get(state)),
                _ => {
                    let expected = if arg % 2 == 0 { state } else { Some(arg) };
                    let swaps = state == expected;
                    if swaps {
                        state = Some(value);
                    }
                    (
                        KvInput::Cas {
                            key: K,
                            expected,
                            value,
                        },
                        KvOutput::Cas(swaps),
                    )
                }
            };
            history.push(op(i as u32, input, Some(output), (at - w, at + w)));
        }
        history
    }

    proptest! {
        // Oracle: any history produced by executing operations one at a time (each taking
        // effect at an instant inside its interval) is linearizable.
        #[test]
        fn executed_histories_are_accepted(
            ops in proptest::collection::vec((0u8..3, 0u64..4), 1..40),
            widen in proptest::collection::vec(0u64..150, 40),
        ) {
            let history = executed_history(&ops, &widen);
            prop_assert!(check_history(&history).is_ok());
        }

        // Corrupting one read of a strictly sequential history (no overlap) to a value the
        // key never held at that point is always caught.
        #[test]
        fn a_corrupted_sequential_read_is_rejected(
            ops in proptest::collection::vec((0u8..3, 0u64..4), 2..30),
            pick in any::<prop::sample::Index>(),
        ) {
            let mut history = executed_history(&ops, &vec![0; ops.len()]);
            let reads: Vec<usize> = history.iter().enumerate()
                .filter(|(_, op)| matches!(op.input, KvInput::Get { .. }))
                .map(|(i, _)| i)
                .collect();
            prop_assume!(!reads.is_empty());
            let i = reads[pick.index(reads.len())];
            history[i].output = Some(KvOutput::Get(Some(u64::MAX)));
            prop_assert!(check_history(&history).is_err());
        }
    }
}
