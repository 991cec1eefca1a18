//! Which of our member processes opened a TCP connection, found through
//! Linux's /proc: the connection's inode from /proc/net/tcp{,6}, then the
//! process whose /proc/PID/fd holds `socket:[inode]`.
//!
//! Peer proxies need this because every member dials a member's advertised
//! peer URL from 127.0.0.1 with a kernel-chosen port; only the socket's owner
//! says which link (from -> to) a connection belongs to. It works for any
//! peer protocol (etcd's rafthttp, keel's own), unlike sniffing headers.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The pid among `candidates` that owns the client end of the TCP
/// connection from `dialer` to `listener`, if any does (it may have closed
/// the socket meanwhile, or not be one of ours).
pub(crate) fn socket_owner(
    dialer: SocketAddr,
    listener: SocketAddr,
    candidates: &[u32],
) -> std::io::Result<Option<u32>> {
    let Some(inode) = socket_inode(dialer, listener)? else {
        return Ok(None);
    };
    let wanted = format!("socket:[{inode}]");
    for &pid in candidates {
        let entries = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(entries) => entries,
            // The process exited meanwhile, or is not ours to look into.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            if std::fs::read_link(entry.path())
                .is_ok_and(|target| target.as_os_str() == wanted.as_str())
            {
                return Ok(Some(pid));
            }
        }
    }
    Ok(None)
}

/// The inode of the socket whose local end is `local` and remote end
/// `remote`, from /proc/net/tcp and /proc/net/tcp6.
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> std::io::Result<Option<u64>> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Some(inode) = text
            .lines()
            .skip(1)
            .find_map(|line| match_line(line, local, remote))
        {
            return Ok(Some(inode));
        }
    }
    Ok(None)
}

/// The inode of one /proc/net/tcp line if its endpoints are `local` and
/// `remote`. Line format: `sl local rem st tx:rx tr:when retrnsmt uid
/// timeout inode ...`, addresses as hex `ADDR:PORT`.
fn match_line(line: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (line_local, line_remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
    if parse_endpoint(line_local)? != normalize(local)
        || parse_endpoint(line_remote)? != normalize(remote)
    {
        return None;
    }
    inode.parse().ok().filter(|&inode| inode != 0)
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn normalize(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

/// Parses `0100007F:1F90` (IPv4) or a 32-hex-digit IPv6 address and port.
/// The kernel prints each 32-bit word of the address as a host-order
/// integer, so the bytes come back with `to_ne_bytes`.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (address_hex, port_hex) = text.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for chunk in address_hex.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(normalize(SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the /proc/net/tcp decoding the proxy's link attribution rests
    // on: a loopback address and port as the kernel prints them on this
    // (little-endian) machine, and an IPv4-mapped IPv6 one.
    #[test]
    fn proc_net_tcp_endpoints_decode_to_socket_addresses() {
        let expected: SocketAddr = "127.0.0.1:8080".parse().expect("address");
        if cfg!(target_endian = "little") {
            assert_eq!(parse_endpoint("0100007F:1F90"), Some(expected));
            assert_eq!(
                parse_endpoint("0000000000000000FFFF00000100007F:1F90"),
                Some(expected)
            );
        }
        assert_eq!(parse_endpoint("zz:1F90"), None);
        assert_eq!(parse_endpoint("0100007F"), None);
    }

    // Guards the whole lookup against the real kernel: a connection this
    // test process opens is attributed to this process and no other.
    #[test]
    fn a_connection_is_attributed_to_the_process_that_opened_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let listener_address = listener.local_addr().expect("local address");
        let client = std::net::TcpStream::connect(listener_address).expect("connect");
        let (_server_end, dialer) = listener.accept().expect("accept");
        assert_eq!(dialer, client.local_addr().expect("client address"));
        let me = std::process::id();
        let other = 1; // init: never our socket
        assert_eq!(
            socket_owner(dialer, listener_address, &[other, me]).expect("proc"),
            Some(me)
        );
        assert_eq!(
            socket_owner(dialer, listener_address, &[other]).expect("proc"),
            None
        );
    }
}
