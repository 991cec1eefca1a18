//! A linearizability checker for one register (put / get / compare-and-swap),
//! in the style of Wing & Gong with Lowe's "just-in-time" search and
//! memoization (the algorithm behind Knossos and Porcupine). Keys of the store
//! are independent registers, so the caller checks each key's sub-history on
//! its own (P-compositionality: a history is linearizable iff every key's is).
//!
//! Real-time order: op `a` precedes op `b` iff `a.complete_ns < b.invoke_ns`.
//! An indeterminate op (a write whose client saw a timeout or a broken
//! connection) may take effect once at any point after its invocation, or
//! never; it never bounds when other ops may take effect.

use std::collections::HashSet;
use std::fmt;

/// The register's value: `None` is "key absent" (the initial state).
pub(crate) type RegisterValue = Option<Vec<u8>>;

/// One operation on one register as the client saw it.
#[derive(Clone, Debug)]
pub(crate) struct RegisterOp {
    /// The caller's name for this op (shown in counterexamples).
    pub id: u64,
    /// When the client sent the request, monotonic nanoseconds.
    pub invoke_ns: u64,
    /// What it did and what came back.
    pub kind: RegisterOpKind,
}

/// The operation and its outcome. `*Maybe` variants had no response.
#[derive(Clone, Debug)]
pub(crate) enum RegisterOpKind {
    /// An acknowledged put of `value`, answered at `complete_ns`.
    Write { value: Vec<u8>, complete_ns: u64 },
    /// A put with no answer: applied once after `invoke_ns`, or never.
    WriteMaybe { value: Vec<u8> },
    /// A linearizable read that returned `observed`.
    Read {
        observed: RegisterValue,
        complete_ns: u64,
    },
    /// A compare-and-swap (`expected` -> `new`) with a known outcome.
    Cas {
        expected: RegisterValue,
        new: Vec<u8>,
        succeeded: bool,
        complete_ns: u64,
    },
    /// A compare-and-swap with no answer.
    CasMaybe {
        expected: RegisterValue,
        new: Vec<u8>,
    },
}

impl RegisterOpKind {
    /// When the answer arrived; `None` for an indeterminate op.
    pub(crate) fn complete_ns(&self) -> Option<u64> {
        match self {
            RegisterOpKind::Write { complete_ns, .. }
            | RegisterOpKind::Read { complete_ns, .. }
            | RegisterOpKind::Cas { complete_ns, .. } => Some(*complete_ns),
            RegisterOpKind::WriteMaybe { .. } | RegisterOpKind::CasMaybe { .. } => None,
        }
    }
}

/// How much work the search may do before giving up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SearchBudget {
    /// Distinct (linearized set, register value) configurations visited, max.
    pub configurations_max: usize,
}

impl Default for SearchBudget {
    fn default() -> Self {
        // ~100 bytes per configuration for the sub-histories of a few
        // thousand ops the fault tests produce: a few hundred MiB at most.
        SearchBudget {
            configurations_max: 2_000_000,
        }
    }
}

/// What a successful check looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CheckStats {
    /// Ops in the sub-history.
    pub ops: usize,
    /// Of them, ops without an answer.
    pub indeterminate_ops: usize,
    /// Configurations the search visited.
    pub configurations: usize,
}

/// Why a register history was not shown linearizable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckFailure {
    /// Every order consistent with real time breaks the register's rules.
    #[error("{0}")]
    NotLinearizable(Box<Counterexample>),
    /// The search ran out of budget before it could decide.
    #[error(
        "search budget exhausted after {configurations} configurations of a {ops}-op history; \
         undecided (raise SearchBudget or shorten the history)"
    )]
    BudgetExhausted { configurations: usize, ops: usize },
    /// An op claims to have completed before it was invoked.
    #[error("op {id:#x} completes at {complete_ns} ns, before its invocation at {invoke_ns} ns")]
    CompletesBeforeInvoke {
        id: u64,
        invoke_ns: u64,
        complete_ns: u64,
    },
}

/// The deepest point the search reached in a non-linearizable history.
#[derive(Debug)]
pub(crate) struct Counterexample {
    /// Answered ops that could be put in a legal order, max over all paths.
    pub ordered_answered_ops: usize,
    /// Answered ops in the history.
    pub answered_ops: usize,
    /// The register's value after that longest legal prefix.
    pub value_after_prefix: RegisterValue,
    /// The answered op that completes first among those not yet ordered:
    /// it, or something invoked before it completed, had to go next.
    pub blocking_op: String,
    /// Every op that could have gone next (invoked before `blocking_op`
    /// completed), none of which is legal in the register's state.
    pub candidate_ops: Vec<String>,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: at most {} of {} answered ops fit a legal order; after them the \
             register holds {}",
            self.ordered_answered_ops,
            self.answered_ops,
            show_value(&self.value_after_prefix)
        )?;
        writeln!(f, "  first-completing op not ordered: {}", self.blocking_op)?;
        writeln!(f, "  ops that could go next, none legal:")?;
        for line in &self.candidate_ops {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Checks one register's history against the sequential register model.
pub(crate) fn check_register(
    ops: &[RegisterOp],
    budget: SearchBudget,
) -> Result<CheckStats, CheckFailure> {
    for op in ops {
        if let Some(complete_ns) = op.kind.complete_ns() {
            if complete_ns < op.invoke_ns {
                return Err(CheckFailure::CompletesBeforeInvoke {
                    id: op.id,
                    invoke_ns: op.invoke_ns,
                    complete_ns,
                });
            }
        }
    }
    Search::new(ops).run(budget)
}

/// A value as it appears in a report.
pub(crate) fn show_value(value: &RegisterValue) -> String {
    match value {
        None => "<absent>".to_string(),
        Some(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
    }
}

/// One line describing `op`, times in ms on the history's clock (the lines
/// of a saved history file show the same id and times).
fn describe(op: &RegisterOp) -> String {
    let ms = |ns: u64| ns as f64 / 1e6;
    let window = match op.kind.complete_ns() {
        Some(complete_ns) => format!("[{:.3} ms, {:.3} ms]", ms(op.invoke_ns), ms(complete_ns)),
        None => format!("[{:.3} ms, no answer]", ms(op.invoke_ns)),
    };
    let what = match &op.kind {
        RegisterOpKind::Write { value, .. } => {
            format!("put {} -> ok", show_value(&Some(value.clone())))
        }
        RegisterOpKind::WriteMaybe { value } => {
            format!("put {} -> indeterminate", show_value(&Some(value.clone())))
        }
        RegisterOpKind::Read { observed, .. } => format!("get -> {}", show_value(observed)),
        RegisterOpKind::Cas {
            expected,
            new,
            succeeded,
            ..
        } => format!(
            "cas {} -> {} : {}",
            show_value(expected),
            show_value(&Some(new.clone())),
            if *succeeded { "succeeded" } else { "failed" }
        ),
        RegisterOpKind::CasMaybe { expected, new } => format!(
            "cas {} -> {} : indeterminate",
            show_value(expected),
            show_value(&Some(new.clone()))
        ),
    };
    format!("op {:#x} {window} {what}", op.id)
}

/// Register values interned to small ids; 0 is "absent".
type StateId = u32;
const ABSENT: StateId = 0;

/// An op's effect on the interned register.
#[derive(Clone, Copy)]
enum Step {
    Write(StateId),
    Read(StateId),
    CasSucceeded { expected: StateId, new: StateId },
    CasFailed { expected: StateId },
}

impl Step {
    /// The register after this op, or `None` if the op cannot happen in
    /// `state`. An indeterminate CAS is only ever placed where it succeeds:
    /// "failed" and "never happened" are the same to the register.
    fn apply(self, state: StateId) -> Option<StateId> {
        match self {
            Step::Write(value) => Some(value),
            Step::Read(value) => (state == value).then_some(state),
            Step::CasSucceeded { expected, new } => (state == expected).then_some(new),
            Step::CasFailed { expected } => (state != expected).then_some(state),
        }
    }
}

/// A fixed-size set of op indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct OpSet(Box<[u64]>);

impl OpSet {
    fn new(len: usize) -> OpSet {
        OpSet(vec![0; len.div_ceil(64)].into_boxed_slice())
    }
    fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }
    fn remove(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

/// Doubly linked lists over op indices with a sentinel at `len`, so that
/// unlinking and relinking in LIFO order are O(1) (Knuth's dancing links,
/// as in Lowe's formulation of WGL).
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    /// A list holding `order` in that order.
    fn new(len: usize, order: &[usize]) -> Links {
        let head = len;
        let mut next = vec![head; len + 1];
        let mut prev = vec![head; len + 1];
        let mut last = head;
        for &index in order {
            next[last] = index;
            prev[index] = last;
            last = index;
        }
        next[last] = head;
        prev[head] = last;
        Links { next, prev }
    }
    fn unlink(&mut self, index: usize) {
        let (before, after) = (self.prev[index], self.next[index]);
        self.next[before] = after;
        self.prev[after] = before;
    }
    /// Undoes the latest `unlink` of `index` (must be called in LIFO order).
    fn relink(&mut self, index: usize) {
        let (before, after) = (self.prev[index], self.next[index]);
        self.next[before] = index;
        self.prev[after] = index;
    }
}

/// One decision on the search stack: `op` was placed while the register
/// held `state_before`.
struct Frame {
    op: usize,
    state_before: StateId,
}

struct Search<'a> {
    ops: &'a [RegisterOp],
    steps: Vec<Step>,
    /// Unordered ops by invocation time.
    by_invoke: Links,
    /// Unordered answered ops by completion time.
    by_complete: Links,
    answered_ops: usize,
    values: Vec<RegisterValue>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [RegisterOp]) -> Search<'a> {
        let mut values: Vec<RegisterValue> = vec![None];
        let mut intern = |value: &RegisterValue| -> StateId {
            match values.iter().position(|v| v == value) {
                Some(id) => StateId::try_from(id).expect("fewer than 2^32 distinct values"),
                None => {
                    values.push(value.clone());
                    StateId::try_from(values.len() - 1).expect("fewer than 2^32 distinct values")
                }
            }
        };
        let steps: Vec<Step> = ops
            .iter()
            .map(|op| match &op.kind {
                RegisterOpKind::Write { value, .. } | RegisterOpKind::WriteMaybe { value } => {
                    Step::Write(intern(&Some(value.clone())))
                }
                RegisterOpKind::Read { observed, .. } => Step::Read(intern(observed)),
                RegisterOpKind::Cas {
                    expected,
                    new,
                    succeeded: true,
                    ..
                }
                | RegisterOpKind::CasMaybe { expected, new } => Step::CasSucceeded {
                    expected: intern(expected),
                    new: intern(&Some(new.clone())),
                },
                RegisterOpKind::Cas {
                    expected,
                    succeeded: false,
                    ..
                } => Step::CasFailed {
                    expected: intern(expected),
                },
            })
            .collect();
        let mut invoke_order: Vec<usize> = (0..ops.len()).collect();
        invoke_order.sort_by_key(|&i| (ops[i].invoke_ns, i));
        let mut complete_order: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].kind.complete_ns().is_some())
            .collect();
        complete_order.sort_by_key(|&i| (ops[i].kind.complete_ns(), i));
        Search {
            ops,
            steps,
            by_invoke: Links::new(ops.len(), &invoke_order),
            by_complete: Links::new(ops.len(), &complete_order),
            answered_ops: complete_order.len(),
            values,
        }
    }

    fn head(&self) -> usize {
        self.ops.len()
    }

    /// The unordered answered op that completes first, if any is left.
    fn blocking_op(&self) -> Option<usize> {
        let first = self.by_complete.next[self.head()];
        (first != self.head()).then_some(first)
    }

    fn place(&mut self, op: usize) {
        self.by_invoke.unlink(op);
        if self.ops[op].kind.complete_ns().is_some() {
            self.by_complete.unlink(op);
        }
    }

    fn unplace(&mut self, op: usize) {
        if self.ops[op].kind.complete_ns().is_some() {
            self.by_complete.relink(op);
        }
        self.by_invoke.relink(op);
    }

    /// Depth-first search over legal orders. An op may go next iff it was
    /// invoked no later than the earliest completion among unordered
    /// answered ops; the search succeeds once every answered op is ordered
    /// (indeterminate ops left over simply never took effect).
    fn run(mut self, budget: SearchBudget) -> Result<CheckStats, CheckFailure> {
        let head = self.head();
        let mut placed = OpSet::new(self.ops.len());
        let mut seen: HashSet<(OpSet, StateId)> = HashSet::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut state = ABSENT;
        let mut cursor = self.by_invoke.next[head];
        let mut answered_placed = 0usize;
        let mut deepest: Option<Counterexample> = None;
        loop {
            let Some(blocking) = self.blocking_op() else {
                return Ok(CheckStats {
                    ops: self.ops.len(),
                    indeterminate_ops: self.ops.len() - self.answered_ops,
                    configurations: seen.len(),
                });
            };
            let bound_ns = self.ops[blocking].kind.complete_ns().expect("answered op");
            if deepest
                .as_ref()
                .is_none_or(|d| answered_placed > d.ordered_answered_ops)
            {
                deepest = Some(self.counterexample(answered_placed, state, blocking, bound_ns));
            }
            let mut chosen = None;
            let mut candidate = cursor;
            while candidate != head && self.ops[candidate].invoke_ns <= bound_ns {
                if let Some(next_state) = self.steps[candidate].apply(state) {
                    placed.insert(candidate);
                    if seen.insert((placed.clone(), next_state)) {
                        chosen = Some((candidate, next_state));
                        break;
                    }
                    placed.remove(candidate);
                }
                candidate = self.by_invoke.next[candidate];
            }
            if seen.len() > budget.configurations_max {
                return Err(CheckFailure::BudgetExhausted {
                    configurations: seen.len(),
                    ops: self.ops.len(),
                });
            }
            match chosen {
                Some((op, next_state)) => {
                    self.place(op);
                    stack.push(Frame {
                        op,
                        state_before: state,
                    });
                    if self.ops[op].kind.complete_ns().is_some() {
                        answered_placed += 1;
                    }
                    state = next_state;
                    cursor = self.by_invoke.next[head];
                }
                None => {
                    let Some(frame) = stack.pop() else {
                        let deepest = deepest.expect("set before the first step");
                        return Err(CheckFailure::NotLinearizable(Box::new(deepest)));
                    };
                    self.unplace(frame.op);
                    placed.remove(frame.op);
                    if self.ops[frame.op].kind.complete_ns().is_some() {
                        answered_placed -= 1;
                    }
                    state = frame.state_before;
                    cursor = self.by_invoke.next[frame.op];
                }
            }
        }
    }

    fn counterexample(
        &self,
        answered_placed: usize,
        state: StateId,
        blocking: usize,
        bound_ns: u64,
    ) -> Counterexample {
        let mut candidate_ops = Vec::new();
        let mut candidate = self.by_invoke.next[self.head()];
        while candidate != self.head() && self.ops[candidate].invoke_ns <= bound_ns {
            candidate_ops.push(describe(&self.ops[candidate]));
            candidate = self.by_invoke.next[candidate];
        }
        Counterexample {
            ordered_answered_ops: answered_placed,
            answered_ops: self.answered_ops,
            value_after_prefix: self.values[state as usize].clone(),
            blocking_op: describe(&self.ops[blocking]),
            candidate_ops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }
    fn put(id: u64, invoke_ns: u64, complete_ns: u64, value: &str) -> RegisterOp {
        RegisterOp {
            id,
            invoke_ns,
            kind: RegisterOpKind::Write {
                value: v(value),
                complete_ns,
            },
        }
    }
    fn put_maybe(id: u64, invoke_ns: u64, value: &str) -> RegisterOp {
        RegisterOp {
            id,
            invoke_ns,
            kind: RegisterOpKind::WriteMaybe { value: v(value) },
        }
    }
    fn get(id: u64, invoke_ns: u64, complete_ns: u64, observed: Option<&str>) -> RegisterOp {
        RegisterOp {
            id,
            invoke_ns,
            kind: RegisterOpKind::Read {
                observed: observed.map(v),
                complete_ns,
            },
        }
    }
    fn cas(
        id: u64,
        invoke_ns: u64,
        complete_ns: u64,
        expected: Option<&str>,
        new: &str,
        succeeded: bool,
    ) -> RegisterOp {
        RegisterOp {
            id,
            invoke_ns,
            kind: RegisterOpKind::Cas {
                expected: expected.map(v),
                new: v(new),
                succeeded,
                complete_ns,
            },
        }
    }
    fn cas_maybe(id: u64, invoke_ns: u64, expected: Option<&str>, new: &str) -> RegisterOp {
        RegisterOp {
            id,
            invoke_ns,
            kind: RegisterOpKind::CasMaybe {
                expected: expected.map(v),
                new: v(new),
            },
        }
    }
    fn verdict(ops: &[RegisterOp]) -> Result<CheckStats, CheckFailure> {
        check_register(ops, SearchBudget::default())
    }

    // Guards the accepting side: concurrent writes with reads that see either
    // of them in a consistent order, and a CAS chain, are linearizable.
    #[test]
    fn concurrent_writes_and_reads_in_some_legal_order_are_accepted() {
        let history = [
            get(0, 0, 5, None),
            put(1, 10, 40, "a"),
            put(2, 15, 45, "b"),
            get(3, 20, 50, Some("b")),
            get(4, 46, 60, Some("a")), // b then a: both writes overlap the first read
            cas(5, 61, 70, Some("a"), "c", true),
            cas(6, 65, 80, Some("a"), "d", false),
            get(7, 81, 90, Some("c")),
        ];
        let stats = verdict(&history).expect("linearizable");
        assert_eq!(stats.ops, 8);
        assert_eq!(stats.indeterminate_ops, 0);
    }

    // Guards the core rule: a read that starts after a write was acknowledged
    // must not return the value that write replaced (a stale read, as from a
    // deposed leader serving reads locally).
    #[test]
    fn stale_read_after_acknowledged_write_is_rejected() {
        let history = [
            put(0, 0, 10, "a"),
            put(1, 20, 30, "b"),
            get(2, 40, 50, Some("a")),
        ];
        let failure = verdict(&history).expect_err("stale read");
        let CheckFailure::NotLinearizable(counterexample) = failure else {
            panic!("wrong failure: {failure}");
        };
        assert_eq!(counterexample.ordered_answered_ops, 2, "{counterexample}");
        assert_eq!(
            counterexample.value_after_prefix,
            Some(v("b")),
            "{counterexample}"
        );
        assert!(
            counterexample.blocking_op.contains("op 0x2 "),
            "{counterexample}"
        );
    }

    // Guards CAS semantics: two CAS from the same expected value cannot both
    // succeed (a lost update), even when they overlap.
    #[test]
    fn two_successful_cas_from_the_same_value_are_rejected() {
        let history = [
            put(0, 0, 10, "a"),
            cas(1, 20, 40, Some("a"), "b", true),
            cas(2, 25, 45, Some("a"), "c", true),
        ];
        assert!(matches!(
            verdict(&history),
            Err(CheckFailure::NotLinearizable(_))
        ));
    }

    // Guards the failure side of CAS: a CAS that reports failure although the
    // register held its expected value throughout is not linearizable.
    #[test]
    fn failed_cas_while_value_matched_is_rejected() {
        let history = [
            put(0, 0, 10, "a"),
            cas(1, 20, 30, Some("a"), "b", false),
            get(2, 40, 50, Some("a")),
        ];
        assert!(matches!(
            verdict(&history),
            Err(CheckFailure::NotLinearizable(_))
        ));
    }

    // Guards the model's initial state and value identity: a read of a value
    // nobody wrote, or of "absent" after a completed write, is rejected.
    #[test]
    fn reads_of_unwritten_values_or_of_absent_after_a_write_are_rejected() {
        assert!(verdict(&[put(0, 0, 10, "a"), get(1, 5, 15, Some("zz"))]).is_err());
        assert!(verdict(&[put(0, 0, 10, "a"), get(1, 20, 30, None)]).is_err());
        assert!(verdict(&[get(0, 0, 10, None), put(1, 5, 15, "a")]).is_ok());
    }

    // Guards indeterminate ops: a write with no answer may have taken effect
    // (a later read sees it) or not (reads never see it); both are legal,
    // also when it is observed long after the client gave up on it.
    #[test]
    fn indeterminate_writes_may_take_effect_late_or_never() {
        let seen_late = [
            put(0, 0, 10, "a"),
            put_maybe(1, 20, "b"),
            get(2, 30, 40, Some("a")),
            get(3, 100, 110, Some("b")),
        ];
        let stats = verdict(&seen_late).expect("applied after the first read");
        assert_eq!(stats.indeterminate_ops, 1);
        let never_seen = [
            put(0, 0, 10, "a"),
            put_maybe(1, 20, "b"),
            get(2, 100, 110, Some("a")),
        ];
        verdict(&never_seen).expect("never applied");
        let cas_applied = [
            put(0, 0, 10, "a"),
            cas_maybe(1, 20, Some("a"), "b"),
            get(2, 30, 40, Some("b")),
            get(3, 50, 60, Some("b")),
        ];
        verdict(&cas_applied).expect("indeterminate CAS applied");
    }

    // Guards that an indeterminate op still respects causality: it cannot
    // take effect before it was invoked, nor twice, nor from a value the
    // register did not hold.
    #[test]
    fn indeterminate_ops_cannot_act_before_invocation_or_twice() {
        let before_invoke = [
            put(0, 0, 10, "a"),
            get(1, 20, 30, Some("b")),
            put_maybe(2, 40, "b"),
        ];
        assert!(verdict(&before_invoke).is_err());
        let twice = [
            put_maybe(0, 0, "b"),
            get(1, 10, 20, Some("b")),
            put(2, 30, 40, "a"),
            get(3, 50, 60, Some("b")),
        ];
        assert!(verdict(&twice).is_err());
        let wrong_expectation = [
            put(0, 0, 10, "a"),
            cas_maybe(1, 20, Some("x"), "b"),
            get(2, 30, 40, Some("b")),
        ];
        assert!(verdict(&wrong_expectation).is_err());
    }

    // Guards the budget: a search that cannot finish says so instead of
    // running unbounded or claiming a verdict.
    #[test]
    fn search_stops_at_its_budget_and_says_so() {
        // Many concurrent unanswered writes and a final impossible read make
        // the search try every subset of them.
        let mut history: Vec<RegisterOp> =
            (0..20).map(|i| put_maybe(i, i, &format!("w{i}"))).collect();
        history.push(get(99, 100, 110, Some("never written")));
        let failure = check_register(
            &history,
            SearchBudget {
                configurations_max: 1_000,
            },
        )
        .expect_err("undecided");
        assert!(
            matches!(failure, CheckFailure::BudgetExhausted { .. }),
            "{failure}"
        );
    }

    // Guards input validation: an op cannot complete before its invocation.
    #[test]
    fn ops_completing_before_invocation_are_refused() {
        let failure = verdict(&[put(7, 10, 5, "a")]).expect_err("malformed");
        assert!(matches!(
            failure,
            CheckFailure::CompletesBeforeInvoke { id: 7, .. }
        ));
    }

    /// The oracle: tries every order of every subset of indeterminate ops
    /// plus all answered ops, keeping those that respect real time, and runs
    /// the register on each. Exponential; only for tiny histories.
    fn brute_force_is_linearizable(ops: &[RegisterOp]) -> bool {
        let answered: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].kind.complete_ns().is_some())
            .collect();
        let maybe: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].kind.complete_ns().is_none())
            .collect();
        (0..1usize << maybe.len()).any(|mask| {
            let mut chosen = answered.clone();
            chosen.extend(
                maybe
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| mask & (1 << bit) != 0)
                    .map(|(_, &i)| i),
            );
            permutations(&chosen)
                .into_iter()
                .any(|order| legal_order(ops, &order))
        })
    }

    fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
        if items.is_empty() {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for (i, &first) in items.iter().enumerate() {
            let mut rest = items.to_vec();
            rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                out.push(tail);
            }
        }
        out
    }

    fn legal_order(ops: &[RegisterOp], order: &[usize]) -> bool {
        for (position, &later) in order.iter().enumerate() {
            for &earlier in &order[position + 1..] {
                // `earlier` is placed after `later`; real time must allow it.
                if ops[earlier]
                    .kind
                    .complete_ns()
                    .is_some_and(|c| c < ops[later].invoke_ns)
                {
                    return false;
                }
            }
        }
        let mut register: RegisterValue = None;
        for &i in order {
            match &ops[i].kind {
                RegisterOpKind::Write { value, .. } | RegisterOpKind::WriteMaybe { value } => {
                    register = Some(value.clone());
                }
                RegisterOpKind::Read { observed, .. } => {
                    if *observed != register {
                        return false;
                    }
                }
                RegisterOpKind::Cas {
                    expected,
                    new,
                    succeeded,
                    ..
                } => {
                    if (*expected == register) != *succeeded {
                        return false;
                    }
                    if *succeeded {
                        register = Some(new.clone());
                    }
                }
                RegisterOpKind::CasMaybe { expected, new } => {
                    if *expected != register {
                        return false;
                    }
                    register = Some(new.clone());
                }
            }
        }
        true
    }

    fn arb_value() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            Just(Some(v("a"))),
            Just(Some(v("b"))),
            Just(Some(v("c")))
        ]
    }

    /// (invoke, length, kind selector, first value, second value, flag).
    type RawOp = (u64, u64, u8, RegisterValue, RegisterValue, bool);

    fn arb_op() -> impl Strategy<Value = RawOp> {
        (
            0u64..12,
            0u64..6,
            0u8..5,
            arb_value(),
            arb_value(),
            any::<bool>(),
        )
    }

    fn build(raw: Vec<RawOp>) -> Vec<RegisterOp> {
        raw.into_iter()
            .enumerate()
            .map(|(id, (invoke_ns, length_ns, kind, first, second, flag))| {
                let complete_ns = invoke_ns + length_ns;
                let value = first.clone().unwrap_or_else(|| v("a"));
                let kind = match kind {
                    0 => RegisterOpKind::Write { value, complete_ns },
                    1 => RegisterOpKind::WriteMaybe { value },
                    2 => RegisterOpKind::Read {
                        observed: first,
                        complete_ns,
                    },
                    3 => RegisterOpKind::Cas {
                        expected: first,
                        new: second.unwrap_or_else(|| v("b")),
                        succeeded: flag,
                        complete_ns,
                    },
                    _ => RegisterOpKind::CasMaybe {
                        expected: first,
                        new: second.unwrap_or_else(|| v("c")),
                    },
                };
                RegisterOp {
                    id: id as u64,
                    invoke_ns,
                    kind,
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2_000,
            // An integration-test module has no lib.rs to persist next to; the
            // minimal failing input is printed instead.
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        // Oracle test: on tiny random histories (both verdicts occur) the
        // WGL search agrees with exhaustive enumeration of orders.
        #[test]
        fn search_agrees_with_brute_force_on_tiny_histories(raw in prop::collection::vec(arb_op(), 0..6)) {
            let history = build(raw);
            let expected = brute_force_is_linearizable(&history);
            let actual = match verdict(&history) {
                Ok(_) => true,
                Err(CheckFailure::NotLinearizable(_)) => false,
                Err(other) => panic!("unexpected failure: {other}"),
            };
            prop_assert_eq!(actual, expected, "history: {:#?}", history);
        }
    }
}
