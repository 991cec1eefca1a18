//! Data-driven interaction tests (modelled on etcd-io/raft interaction_test.go).
//!
//! Each `tests/interaction/*.txt` file is a script of blocks:
//! ```text
//! command arg1 key=value key=(1,2)
//! ----
//! expected output
//! <blank line>
//! ```
//! Lines starting with `#` are comments. Run with `KEEL_REWRITE=1` to rewrite the expected
//! output from the actual one, then review the diff.

mod harness;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use harness::cluster::Cluster;
use keel_raft::{ConfChange, ConfChangeKind, ConfState, Config, LogIndex, LogStorage, NodeId};

/// One command block of a script.
struct Block {
    command: String,
    expected: String,
}

fn parse(script: &str) -> Vec<(Vec<String>, Block)> {
    let mut blocks = Vec::new();
    let mut lines = script.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            blocks.push((
                vec![line.to_string()],
                Block {
                    command: String::new(),
                    expected: String::new(),
                },
            ));
            continue;
        }
        let separator = lines.next().unwrap_or_default();
        assert_eq!(separator, "----", "expected ---- after command {line:?}");
        let mut expected = String::new();
        while let Some(out) = lines.peek() {
            if out.is_empty() {
                break;
            }
            expected.push_str(out);
            expected.push('\n');
            lines.next();
        }
        blocks.push((
            Vec::new(),
            Block {
                command: line.to_string(),
                expected,
            },
        ));
    }
    blocks
}

fn id(arg: &str) -> NodeId {
    NodeId(
        arg.parse()
            .unwrap_or_else(|_| panic!("bad node id {arg:?}")),
    )
}

fn ids(args: &[&str]) -> Vec<NodeId> {
    args.iter().map(|a| id(a)).collect()
}

/// Parses `(1,2,3)` into ids.
fn id_list(value: &str) -> Vec<NodeId> {
    let inner = value.trim_start_matches('(').trim_end_matches(')');
    inner.split(',').filter(|s| !s.is_empty()).map(id).collect()
}

fn kwarg<'a>(args: &[&'a str], key: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

fn add_nodes(cluster: &mut Cluster, args: &[&str]) {
    let count: u64 = args[0].parse().expect("node count");
    let voters = kwarg(args, "voters").map(id_list).unwrap_or_default();
    let learners = kwarg(args, "learners").map(id_list).unwrap_or_default();
    let index: u64 = kwarg(args, "index").map_or(0, |v| v.parse().expect("index"));
    let flag = |key: &str, default: bool| kwarg(args, key).map_or(default, |v| v == "true");
    let first = cluster.nodes.keys().last().map_or(1, |n| n.0 + 1);
    for raw_id in first..first + count {
        let mut config = Config::new(NodeId(raw_id));
        config.pre_vote = flag("pre-vote", true);
        config.check_quorum = flag("check-quorum", true);
        config.seed = raw_id;
        if let Some(inflight) = kwarg(args, "inflight") {
            config.inflight_msgs_max = inflight.parse().expect("inflight");
        }
        if let Some(size) = kwarg(args, "max-msg-size") {
            config.msg_size_bytes_max = size.parse().expect("max-msg-size");
        }
        if let Some(size) = kwarg(args, "max-uncommitted") {
            config.uncommitted_size_bytes_max = size.parse().expect("max-uncommitted");
        }
        let conf_state = ConfState {
            voters: voters.clone(),
            learners: learners.clone(),
        };
        cluster.add_node(config, conf_state, index);
        let line = status_line(cluster, NodeId(raw_id));
        let _ = writeln!(cluster.out, "{line}");
    }
}

fn status_line(cluster: &mut Cluster, node: NodeId) -> String {
    let s = cluster.node(node).raw.status();
    format!(
        "{}: {} term={} vote={} commit={} applied={} last={} leader={}",
        node.0,
        s.role,
        s.term.0,
        s.vote.map_or(0, |v| v.0),
        s.commit.0,
        s.applied.0,
        s.last_index.0,
        s.leader_id.map_or(0, |v| v.0)
    )
}

fn progress_lines(cluster: &mut Cluster, node: NodeId) -> String {
    let mut out = String::new();
    if let Some(progress) = cluster.node(node).raw.status().progress {
        for (peer, p) in progress {
            let learner = if p.is_learner { " learner" } else { "" };
            let _ = writeln!(
                out,
                "  {}: {:?} match={} next={} inflight={}{}",
                peer.0, p.state, p.match_index.0, p.next_index.0, p.inflight_msgs, learner
            );
        }
    }
    out
}

fn raft_log(cluster: &mut Cluster, node: NodeId) -> String {
    let storage = cluster.node(node).raw.storage();
    let first = storage.first_index().expect("mem");
    let last = storage.last_index().expect("mem");
    if first > last {
        return format!(
            "log is empty: first index={}, last index={}\n",
            first.0, last.0
        );
    }
    let entries = storage.entries(first, last.next(), None).expect("in range");
    entries
        .iter()
        .map(|e| format!("{}\n", harness::format::entry(e)))
        .collect()
}

fn conf_change(args: &[&str]) -> ConfChange {
    let kind = match args[1] {
        "add" => ConfChangeKind::AddNode,
        "remove" => ConfChangeKind::RemoveNode,
        "add-learner" => ConfChangeKind::AddLearner,
        other => panic!("unknown conf change {other:?}"),
    };
    ConfChange::new(kind, id(args[2]))
}

/// Runs one command; returns its output.
fn run(cluster: &mut Cluster, command: &str) -> String {
    cluster.out.clear();
    let parts: Vec<&str> = command.split_whitespace().collect();
    let (name, args) = (parts[0], &parts[1..]);
    let mut extra = String::new();
    match name {
        "add-nodes" => add_nodes(cluster, args),
        "campaign" | "propose" | "propose-conf-change" => {
            client_call(cluster, name, args, &mut extra)
        }
        "ready" | "persist" | "process-ready" | "deliver-msgs" | "drop-msgs" | "stabilize" => {
            server_loop(cluster, name, args, &mut extra);
        }
        "tick" | "tick-heartbeat" | "tick-election" => tick(cluster, name, args),
        "crash" | "restart" | "partition" | "heal" => fault(cluster, name, args, &mut extra),
        "read-index" => {
            cluster
                .node(id(args[0]))
                .raw
                .read_index(Bytes::from(args[1].to_string()));
        }
        "transfer-leader" => cluster.node(id(args[0])).raw.transfer_leader(id(args[1])),
        "report-unreachable" => cluster
            .node(id(args[0]))
            .raw
            .report_unreachable(id(args[1])),
        "compact" => {
            cluster.compact(id(args[0]));
            let first = cluster
                .node(id(args[0]))
                .raw
                .storage()
                .first_index()
                .expect("mem");
            let _ = writeln!(extra, "first index={}", first.0);
        }
        "status" | "raft-log" | "applied" | "read-states" => {
            inspect(cluster, name, args, &mut extra)
        }
        other => panic!("unknown command {other:?}"),
    }
    let mut out = std::mem::take(&mut cluster.out);
    out.push_str(&extra);
    if out.is_empty() {
        out.push_str("ok\n");
    }
    // Blank lines would end the block in the script format.
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// campaign ID | propose ID DATA | propose-conf-change ID add|remove|add-learner NODE
fn client_call(cluster: &mut Cluster, name: &str, args: &[&str], extra: &mut String) {
    let raw = &mut cluster.node(id(args[0])).raw;
    let result = match name {
        "campaign" => raw.campaign().map_err(|e| e.to_string()),
        "propose" => raw
            .propose(Bytes::from(args[1].to_string()))
            .map_err(|e| e.to_string()),
        _ => raw
            .propose_conf_change(conf_change(args))
            .map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        let _ = writeln!(extra, "error: {e}");
    }
}

/// ready / persist / process-ready / deliver-msgs / drop-msgs IDS...; stabilize [IDS...]
fn server_loop(cluster: &mut Cluster, name: &str, args: &[&str], extra: &mut String) {
    if name == "stabilize" {
        let targets = if args.is_empty() {
            cluster.ids()
        } else {
            ids(args)
        };
        cluster.stabilize(&targets);
        return;
    }
    for node in ids(args) {
        match name {
            "ready" | "process-ready" => {
                let handled = if name == "ready" {
                    cluster.handout(node)
                } else {
                    cluster.process_ready(node)
                };
                if !handled {
                    let _ = writeln!(cluster.out, "> {} has no Ready", node.0);
                }
            }
            "persist" => {
                let _ = writeln!(cluster.out, "> {} persisting a Ready", node.0);
                cluster.persist_one(node);
            }
            "deliver-msgs" => {
                cluster.deliver_to(node);
            }
            _ => {
                let dropped = cluster.net.take_for(node).len();
                let _ = writeln!(extra, "dropped {dropped} messages to {}", node.0);
            }
        }
    }
}

/// tick ID [N] | tick-heartbeat ID | tick-election ID (2 x election_ticks: always fires)
fn tick(cluster: &mut Cluster, name: &str, args: &[&str]) {
    let node = cluster.node(id(args[0]));
    let count = match name {
        "tick" => args.get(1).map_or(1, |n| n.parse().expect("tick count")),
        "tick-heartbeat" => node.config.heartbeat_ticks,
        _ => 2 * node.config.election_ticks,
    };
    for _ in 0..count {
        node.raw.tick();
    }
}

/// crash ID | restart ID | partition (IDS) (IDS)... | heal
fn fault(cluster: &mut Cluster, name: &str, args: &[&str], extra: &mut String) {
    match name {
        "crash" => cluster.crash(id(args[0])),
        "restart" => {
            cluster.restart(id(args[0]));
            let _ = writeln!(extra, "{}", status_line(cluster, id(args[0])));
        }
        "partition" => {
            let groups: Vec<Vec<NodeId>> = args.iter().map(|g| id_list(g)).collect();
            for (i, a) in groups.iter().enumerate() {
                for b in &groups[i + 1..] {
                    cluster.net.partition(a, b);
                }
            }
        }
        _ => cluster.net.heal(),
    }
}

/// status IDS... | raft-log ID | applied IDS... | read-states IDS...
fn inspect(cluster: &mut Cluster, name: &str, args: &[&str], extra: &mut String) {
    if name == "raft-log" {
        extra.push_str(&raft_log(cluster, id(args[0])));
        return;
    }
    for node in ids(args) {
        match name {
            "status" => {
                let _ = writeln!(extra, "{}", status_line(cluster, node));
                extra.push_str(&progress_lines(cluster, node));
            }
            "applied" => {
                let app = &cluster.node(node).app;
                let list: Vec<String> = app
                    .applied
                    .iter()
                    .map(|(i, d)| format!("{}:{}", i.0, String::from_utf8_lossy(d)))
                    .collect();
                let applied = app.applied_index.0;
                let _ = writeln!(extra, "{}: applied={applied} [{}]", node.0, list.join(" "));
            }
            _ => {
                for rs in std::mem::take(&mut cluster.node(node).read_states) {
                    let ctx = String::from_utf8_lossy(&rs.request_ctx).to_string();
                    let _ = writeln!(extra, "{}: read {ctx} at index {}", node.0, rs.index.0);
                }
            }
        }
    }
}

fn run_file(path: &Path) -> Result<(), String> {
    let script = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cluster = Cluster::new(0);
    let mut rewritten = String::new();
    let mut failures = String::new();
    for (comment, block) in parse(&script) {
        if let Some(line) = comment.first() {
            let _ = writeln!(rewritten, "{line}");
            continue;
        }
        let actual = run(&mut cluster, &block.command);
        if actual != block.expected {
            let _ = write!(
                failures,
                "{}: `{}`\n--- expected\n{}--- actual\n{}\n",
                path.display(),
                block.command,
                block.expected,
                actual
            );
        }
        let _ = write!(rewritten, "{}\n----\n{}\n", block.command, actual);
    }
    assert!(cluster.step_errors.is_empty() || path.to_string_lossy().contains("invalid"));
    if std::env::var_os("KEEL_REWRITE").is_some() {
        std::fs::write(path, rewritten.trim_end().to_string() + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interaction");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/interaction exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    paths
}

// Every scenario script replays to exactly its recorded output: any behaviour change in
// elections, replication, reads or membership shows up as a reviewable diff.
#[test]
fn interaction_scripts_replay_to_their_recorded_output() {
    let paths = scripts();
    assert!(
        paths.len() >= 10,
        "expected the scenario scripts, found {}",
        paths.len()
    );
    let failures: Vec<String> = paths.iter().filter_map(|p| run_file(p).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// The parser must keep comments and treat `----` strictly, or scripts could silently skip.
#[test]
fn script_parser_reads_commands_comments_and_outputs() {
    let blocks = parse("# note\ncampaign 1\n----\nok\n\nstabilize\n----\na\nb\n");
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0].0, vec!["# note".to_string()]);
    assert_eq!(blocks[1].1.command, "campaign 1");
    assert_eq!(blocks[2].1.expected, "a\nb\n");
    assert_eq!(LogIndex(0).next(), LogIndex(1));
}
