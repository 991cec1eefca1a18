//! Human-readable, stable renderings of Readies, messages and entries for interaction-test
//! output (modelled on etcd's raft/util.go DescribeReady / DescribeMessage).

use std::fmt::Write;

use keel_raft::{ConfChange, Entry, EntryKind, Message, MessageKind, Ready, Role, Snapshot};

pub fn entry(e: &Entry) -> String {
    let body = match e.kind {
        EntryKind::Normal => format!("Normal {:?}", String::from_utf8_lossy(&e.data)),
        EntryKind::ConfChange => match ConfChange::decode(&e.data) {
            Ok(cc) => format!("ConfChange {:?} {}", cc.kind, cc.node_id.0),
            Err(err) => format!("ConfChange <{err}>"),
        },
    };
    format!("{}/{} {}", e.term.0, e.index.0, body)
}

pub fn entries(list: &[Entry]) -> String {
    list.iter().map(entry).collect::<Vec<_>>().join(", ")
}

fn context(m: &Message) -> String {
    if m.context.is_empty() {
        return String::new();
    }
    if m.context.len() == 8
        && matches!(
            m.kind,
            MessageKind::Heartbeat | MessageKind::HeartbeatResponse
        )
    {
        let round = u64::from_le_bytes(m.context.as_ref().try_into().expect("8 bytes"));
        return format!(" Round:{round}");
    }
    format!(" Ctx:{:?}", String::from_utf8_lossy(&m.context))
}

pub fn snapshot(s: &Snapshot) -> String {
    let voters: Vec<String> = s
        .meta
        .conf_state
        .voters
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    let learners: Vec<String> = s
        .meta
        .conf_state
        .learners
        .iter()
        .map(|v| v.0.to_string())
        .collect();
    format!(
        "Index:{} Term:{} Voters:({}) Learners:({})",
        s.meta.index.0,
        s.meta.term.0,
        voters.join(" "),
        learners.join(" ")
    )
}

pub fn message(m: &Message) -> String {
    let mut out = format!("{}->{} {:?} Term:{}", m.from.0, m.to.0, m.kind, m.term.0);
    match m.kind {
        MessageKind::Append => {
            let _ = write!(
                out,
                " Log:{}/{} Commit:{}",
                m.log_term.0, m.index.0, m.commit.0
            );
            if !m.entries.is_empty() {
                let _ = write!(out, " Entries:[{}]", entries(&m.entries));
            }
        }
        MessageKind::AppendResponse => {
            let _ = write!(out, " Index:{}", m.index.0);
            if m.reject {
                let _ = write!(
                    out,
                    " Rejected (Hint: {}/{})",
                    m.log_term.0, m.reject_hint.0
                );
            }
        }
        MessageKind::Vote | MessageKind::PreVote => {
            let _ = write!(out, " Log:{}/{}", m.log_term.0, m.index.0);
        }
        MessageKind::VoteResponse | MessageKind::PreVoteResponse if m.reject => {
            out.push_str(" Rejected");
        }
        MessageKind::Heartbeat => {
            let _ = write!(out, " Commit:{}", m.commit.0);
        }
        MessageKind::ReadIndexResponse => {
            let _ = write!(out, " Index:{}", m.index.0);
        }
        MessageKind::Propose => {
            let _ = write!(out, " Entries:[{}]", entries(&m.entries));
        }
        MessageKind::Snapshot => {
            if let Some(s) = &m.snapshot {
                let _ = write!(out, " Snapshot:[{}]", snapshot(s));
            }
        }
        _ => {}
    }
    out.push_str(&context(m));
    out
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Follower => "Follower",
        Role::PreCandidate => "PreCandidate",
        Role::Candidate => "Candidate",
        Role::Leader => "Leader",
    }
}

/// Multi-line description of a Ready, each line indented by two spaces.
pub fn ready(rd: &Ready) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  Ready MustSync={}:", rd.must_sync);
    if let Some(ss) = rd.soft_state {
        let leader = ss.leader_id.map_or(0, |l| l.0);
        let _ = writeln!(out, "  Lead:{} Role:{}", leader, role(ss.role));
    }
    if let Some(hs) = rd.hard_state {
        let vote = hs.vote.map_or(0, |v| v.0);
        let _ = writeln!(
            out,
            "  HardState Term:{} Vote:{} Commit:{}",
            hs.term.0, vote, hs.commit.0
        );
    }
    if !rd.entries.is_empty() {
        let _ = writeln!(out, "  Entries:");
        for e in &rd.entries {
            let _ = writeln!(out, "  {}", entry(e));
        }
    }
    if let Some(s) = &rd.snapshot {
        let _ = writeln!(out, "  Snapshot {}", snapshot(s));
    }
    if !rd.committed_entries.is_empty() {
        let _ = writeln!(out, "  CommittedEntries:");
        for e in &rd.committed_entries {
            let _ = writeln!(out, "  {}", entry(e));
        }
    }
    for (title, list) in [
        ("Messages", &rd.messages),
        ("PersistedMessages", &rd.persisted_messages),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "  {title}:");
            for m in list {
                let _ = writeln!(out, "  {}", message(m));
            }
        }
    }
    for rs in &rd.read_states {
        let _ = writeln!(
            out,
            "  ReadState Index:{} Ctx:{:?}",
            rs.index.0,
            String::from_utf8_lossy(&rs.request_ctx)
        );
    }
    out
}
