//! Test fixtures: a `keel` process on free loopback ports with its own data
//! dir, and the real `etcdctl` 3.4 pointed at it.
//!
//! Rules (DEVELOPERS.md): listen on 127.0.0.1 only, on ports picked here so
//! tests run in parallel; stop only the processes started here, by PID;
//! poll with deadlines instead of sleeping.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a keel process may take to start serving.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (bound and released; the race with another
/// process taking it meanwhile is accepted in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `keel` member.
pub struct Keel {
    pub child: Option<Child>,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Keel {
    /// Starts keel with a fresh temporary data dir and `extra_args`.
    pub fn start(extra_args: &[&str]) -> Keel {
        Keel::start_with_env(extra_args, &[])
    }

    /// Starts keel with `extra_args` and extra environment variables.
    pub fn start_with_env(extra_args: &[&str], envs: &[(&str, &str)]) -> Keel {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data.keel");
        let mut keel = Keel {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            log_path: tmp.path().join("keel.log"),
            data_dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: Some(tmp),
        };
        keel.spawn();
        keel.wait_ready();
        keel
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The flags every test member gets.
    pub fn base_args(&self) -> Vec<String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args = vec![
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
        ];
        // A member of a multi-member cluster names its own --initial-cluster.
        if !self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--initial-cluster="))
        {
            args.push(format!("--initial-cluster=default={peer}"));
        }
        args
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(self.base_args())
            .args(&self.extra_args)
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn keel");
        self.child = Some(child);
    }

    /// Waits until `etcdctl endpoint health` succeeds (a linearizable read
    /// through Raft), or panics with the log.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("keel exited during startup ({status}):\n{}", self.log());
            }
            let out = etcdctl(
                &self.endpoint(),
                &["endpoint", "health", "--command-timeout=2s"],
            );
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "keel did not become healthy:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("keel did not stop on SIGTERM:\n{}", self.log());
        }
    }

    /// Starts the same member again on the same data dir and ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        self.spawn();
        self.wait_ready();
    }

    /// Starts the member again and returns its exit status and log, for a
    /// start that must fail.
    pub fn start_expecting_failure(&mut self) -> (std::process::ExitStatus, String) {
        assert!(self.child.is_none(), "stop or kill first");
        self.spawn();
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "keel kept running although it had to refuse to start:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("member").join("wal")
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint()], None)
            .await
            .expect("connect etcd-client")
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `etcdctl` (API v3) against `endpoint`.
pub fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    etcdctl_with_stdin(endpoint, args, None)
}

pub fn etcdctl_with_stdin(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed (apt-get install etcd-client)");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("etcdctl output")
}

/// stdout of a successful etcdctl run (panics with stderr otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "etcdctl failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 stdout")
}

/// stderr of a failing etcdctl run (panics if it succeeded).
pub fn err(out: Output) -> String {
    assert!(
        !out.status.success(),
        "etcdctl should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses etcdctl's `-w json` output.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad json ({e}): {text}"))
}

/// etcdctl's json encodes keys and values in base64.
pub fn b64(value: &serde_json::Value) -> String {
    use base64::Engine;
    let text = value.as_str().expect("base64 string");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64"),
    )
    .expect("utf8")
}

/// Acknowledged puts of [`kill_9_under_concurrent_writers`]: key -> (value, mod revision).
pub type Acked = std::collections::BTreeMap<String, (String, i64)>;

/// The durability contract under a crash: 8 writers put `w{writer}/{i}`
/// (each at most 2,000 puts or 4 s) and record every acknowledged put; once
/// `acked_before_kill` are acknowledged (waiting at most 10 s) the server is
/// SIGKILLed and restarted with the same flags. Asserts that every
/// acknowledged key has its value at its revision and that revisions are
/// unique, and that a put after the restart gets a newer revision; returns
/// the acknowledged puts.
pub async fn kill_9_under_concurrent_writers(keel: &mut Keel, acked_before_kill: usize) -> Acked {
    use std::sync::{Arc, Mutex};
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_secs(4);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let acked = acked.clone();
            let endpoint = keel.endpoint();
            tokio::spawn(async move {
                let Ok(mut c) = etcd_client::Client::connect([endpoint], None).await else {
                    return;
                };
                for i in 0..2_000 {
                    if Instant::now() > stop_at {
                        break;
                    }
                    let (key, value) = (format!("w{w}/{i:05}"), format!("value-{w}-{i}"));
                    match c.put(key.clone(), value.clone(), None).await {
                        Ok(resp) => {
                            let rev = resp.header().map_or(0, |h| h.revision());
                            acked.lock().expect("lock").insert(key, (value, rev));
                        }
                        Err(_) => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Kill while the writers are busy.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().expect("lock").len() < acked_before_kill && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    keel.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= acked_before_kill,
        "the workload acknowledged only {} writes:\n{}",
        acked.len(),
        keel.log()
    );
    keel.restart();
    let mut c = keel.client().await;
    let resp = c
        .get("w", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .expect("get");
    let stored: Acked = resp
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let value = String::from_utf8_lossy(kv.value()).into_owned();
            (key, (value, kv.mod_revision()))
        })
        .collect();
    let missing: Vec<String> = acked
        .iter()
        .filter(|(key, expected)| stored.get(*key) != Some(expected))
        .map(|(key, expected)| format!("{key}: acked {expected:?}, stored {:?}", stored.get(key)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost or changed:\n{}",
        missing.len(),
        missing.join("\n")
    );
    // Revisions are unique per write, and writing goes on past them.
    let mut revisions: Vec<i64> = acked.values().map(|(_, r)| *r).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), acked.len());
    let after = c.put("after", "restart", None).await.expect("put");
    let revision = after.header().expect("header").revision();
    let newest = revisions.last().copied().unwrap_or(0);
    assert!(
        revision > newest,
        "revision {revision} after the restart is not past {newest}"
    );
    acked
}

/// Segment files of a WAL dir, sorted by name.
pub fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// A real etcd 3.4 (Debian's etcd-server) for side-by-side comparisons.
pub struct Etcd {
    child: Child,
    pub client_port: u16,
    _tmp: tempfile::TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        let tmp = tempfile::tempdir().expect("tempdir");
        let client_port = free_port();
        let peer_port = free_port();
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(tmp.path().join("etcd.log")).expect("log");
        let child = Command::new("etcd")
            .arg(format!(
                "--data-dir={}",
                tmp.path().join("data.etcd").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("etcd is installed (apt-get install etcd-server)");
        let etcd = Etcd {
            child,
            client_port,
            _tmp: tmp,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while !etcdctl(
            &etcd.endpoint(),
            &["endpoint", "health", "--command-timeout=2s"],
        )
        .status
        .success()
        {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A KeyValue as comparable fields: (key, value, create, mod, version, lease).
pub type Row = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

pub fn rows(kvs: &[etcd_client::KeyValue]) -> Vec<Row> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                kv.value().to_vec(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect()
}

/// A keel cluster of several members on loopback.
pub struct Cluster {
    pub members: Vec<Keel>,
    pub initial_cluster: String,
    /// Removed (with every member's data dir) after the members are killed.
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members (names m1..mn) and waits until each is healthy.
    pub fn start(n: usize, extra_args: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let root = tmp.path().to_path_buf();
        let mut members = Vec::new();
        for (i, (client_port, peer_port)) in ports.into_iter().enumerate() {
            let name = format!("m{}", i + 1);
            let mut args = vec![
                format!("--name={name}"),
                format!("--initial-cluster={initial_cluster}"),
            ];
            args.extend(extra_args.iter().map(|s| s.to_string()));
            let keel = Keel {
                child: None,
                client_port,
                peer_port,
                data_dir: root.join(format!("{name}.keel")),
                log_path: root.join(format!("{name}.log")),
                extra_args: args,
                envs: Vec::new(),
                _tmp: None,
            };
            members.push(keel);
        }
        for m in &mut members {
            m.spawn();
        }
        for m in &mut members {
            m.wait_ready();
        }
        Cluster {
            members,
            initial_cluster,
            _tmp: tmp,
        }
    }

    /// Client endpoints of all members, comma separated (for etcdctl).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the member every running member names as leader, polling
    /// until they agree (or panicking after the deadline).
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let mut leaders = Vec::new();
            let mut ids = Vec::new();
            for m in self.members.iter().filter(|m| m.child.is_some()) {
                let out = etcdctl(
                    &m.endpoint(),
                    &["endpoint", "status", "-w", "json", "--command-timeout=2s"],
                );
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    leaders.push(v[0]["Status"]["leader"].as_u64().unwrap_or(0));
                    ids.push(v[0]["Status"]["header"]["member_id"].as_u64().unwrap_or(0));
                } else {
                    leaders.push(0);
                    ids.push(0);
                }
            }
            if let Some(first) = leaders.first().copied() {
                if first != 0 && leaders.iter().all(|l| *l == first) {
                    if let Some(pos) = ids.iter().position(|id| *id == first) {
                        let running: Vec<usize> = (0..self.members.len())
                            .filter(|i| self.members[*i].child.is_some())
                            .collect();
                        return running[pos];
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "members do not agree on a leader: {leaders:x?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("==== {}\n{}", m.log_path.display(), m.log()))
            .collect()
    }
}

impl Keel {
    /// Starts a member with the given complete extra arguments and paths
    /// (for a member joining an existing cluster).
    pub fn start_member(
        data_dir: PathBuf,
        log_path: PathBuf,
        client_port: u16,
        peer_port: u16,
        args: Vec<String>,
    ) -> Keel {
        let mut keel = Keel {
            child: None,
            client_port,
            peer_port,
            data_dir,
            log_path,
            extra_args: args,
            envs: Vec::new(),
            _tmp: None,
        };
        keel.spawn();
        keel.wait_ready();
        keel
    }
}

/// `etcdctl endpoint status -w json`'s Status object of one endpoint.
pub fn endpoint_status(endpoint: &str) -> serde_json::Value {
    let out = ok(etcdctl(endpoint, &["endpoint", "status", "-w", "json"]));
    json(&out)[0]["Status"].clone()
}

/// `etcdctl endpoint hashkv --rev=REV -w json`'s HashKV object (`rev` 0: the
/// current revision), or None when the call fails (e.g. not applied yet).
pub fn hash_kv(endpoint: &str, revision: u64) -> Option<serde_json::Value> {
    let rev = format!("--rev={revision}");
    let out = etcdctl(endpoint, &["endpoint", "hashkv", "-w", "json", &rev]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .map(|v| v[0]["HashKV"].clone())
}

/// Polls `check` every 50 ms until it holds (true) or `deadline` passed.
pub fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
