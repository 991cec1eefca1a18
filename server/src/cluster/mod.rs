//! Cluster identity: member and cluster ids computed as etcd computes them,
//! so the same flags give the same ids as etcd 3.4
//! (etcdserver/api/membership/member.go `newMember`, cluster.go `genID`).

mod identity;
mod members;

pub(crate) use identity::Identity;
pub(crate) use members::{decode_context, encode_context, MemberChange, Members};

use sha1::{Digest, Sha1};
use url::Url;

/// A member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) peer_urls: Vec<String>,
}

/// etcd's URL text: `url::Url` adds a `/` path to `http://host:port`; etcd's
/// types.URLs print without it.
pub(crate) fn url_text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// etcd's member id: SHA-1 over the sorted peer URLs and the cluster token,
/// first 8 bytes big-endian.
pub(crate) fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut sorted = peer_urls.to_vec();
    sorted.sort();
    let mut hasher = Sha1::new();
    for url in &sorted {
        hasher.update(url.as_bytes());
    }
    hasher.update(cluster_token.as_bytes());
    first_u64(&hasher.finalize())
}

/// etcd's cluster id: SHA-1 over the sorted member ids (big-endian u64s).
pub(crate) fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut sorted = member_ids.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for id in sorted {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The members of `--initial-cluster`, with etcd's ids.
pub(crate) fn initial_members(config: &crate::config::Config) -> Vec<Member> {
    config
        .initial_member_names()
        .into_iter()
        .map(|name| {
            let peer_urls: Vec<String> = config
                .initial_cluster
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, u)| url_text(u))
                .collect();
            Member {
                id: member_id(&peer_urls, &config.initial_cluster_token),
                name: name.to_string(),
                peer_urls,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards id compatibility with etcd: a default `etcd` (member "default" at
    // http://localhost:2380, token "etcd-cluster") reports member id
    // 8e9e05c52164694d and cluster id cdf818194e3a8c32 in `etcdctl member list`
    // and response headers.
    #[test]
    fn default_member_and_cluster_ids_match_etcd() {
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }
}
