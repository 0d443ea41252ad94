//! `codebuilder-sshd ready`: whether sshd listens on its address, for a Kubernetes probe.
//!
//! A `tcpSocket` probe opens a connection and closes it before the ssh handshake, and sshd
//! logs `kex_exchange_identification: Connection closed` for each one (two lines a minute in
//! the pod's log). This check opens nothing: it reads the kernel's table of listening sockets
//! (`/proc/net/tcp`, `/proc/net/tcp6`) of the container's network namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{bail, Context};

/// The socket tables, IPv4 then IPv6.
const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// The `st` column of a socket in state LISTEN.
const LISTEN: &str = "0A";

/// Succeeds when a socket listens on `listen` (or on the wildcard address of its port).
pub fn check(listen: SocketAddr) -> anyhow::Result<()> {
    for table in TABLES {
        // A kernel without IPv6 has no tcp6 table.
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if listening(&text)
            .with_context(|| format!("cannot read {table}"))?
            .iter()
            .any(|socket| serves(*socket, listen))
        {
            return Ok(());
        }
    }
    bail!("nothing listens on {listen}: sshd has not started, or has stopped")
}

/// Whether a socket bound to `socket` takes connections to `listen`: its own address, or the
/// wildcard (`::` takes IPv4 too), an IPv4 address mapped into IPv6 counting as itself.
fn serves(socket: SocketAddr, listen: SocketAddr) -> bool {
    let ip = match socket.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    socket.port() == listen.port() && (ip.is_unspecified() || ip == listen.ip())
}

/// The local addresses of the sockets in state LISTEN in one table.
fn listening(table: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut sockets = Vec::new();
    for line in table.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            bail!("a line with fewer than four fields: {line:?}");
        };
        if state == LISTEN {
            sockets.push(socket_address(local)?);
        }
    }
    Ok(sockets)
}

/// `0100007F:0016` (IPv4) or 32 hex digits and a port (IPv6): the address is in the kernel's
/// byte order, 32 bits at a time, and the port is big-endian hex.
fn socket_address(field: &str) -> anyhow::Result<SocketAddr> {
    let bad = || anyhow::anyhow!("not a socket address: {field:?}");
    let (address, port) = field.split_once(':').ok_or_else(bad)?;
    let port = u16::from_str_radix(port, 16).map_err(|_| bad())?;
    let words = address
        .as_bytes()
        .chunks(8)
        .map(|word| {
            std::str::from_utf8(word)
                .ok()
                .and_then(|word| u32::from_str_radix(word, 16).ok())
                .map(u32::swap_bytes)
                .ok_or_else(bad)
        })
        .collect::<anyhow::Result<Vec<u32>>>()?;
    let ip = match words[..] {
        [v4] => IpAddr::V4(Ipv4Addr::from(v4)),
        [a, b, c, d] => {
            let mut octets = [0u8; 16];
            for (chunk, word) in octets.chunks_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return Err(bad()),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:5BA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:5BA0 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:2710 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn listening_sockets_are_read_in_the_kernels_byte_order() {
        assert_eq!(
            listening(TCP).unwrap(),
            [addr("127.0.0.1:23456"), addr("0.0.0.0:22")]
        );
        assert_eq!(
            listening(TCP6).unwrap(),
            [addr("[::1]:8080"), addr("[::ffff:127.0.0.1]:10000")]
        );
    }

    #[test]
    fn a_socket_serves_its_own_address_the_wildcard_and_mapped_ipv4() {
        assert!(serves(addr("127.0.0.1:22"), addr("127.0.0.1:22")));
        assert!(serves(addr("0.0.0.0:22"), addr("127.0.0.1:22")));
        assert!(serves(addr("[::]:22"), addr("10.0.0.1:22")));
        assert!(serves(addr("[::ffff:127.0.0.1]:22"), addr("127.0.0.1:22")));
        assert!(!serves(addr("127.0.0.1:2222"), addr("127.0.0.1:22")));
        assert!(!serves(addr("127.0.0.1:22"), addr("0.0.0.0:22")));
        assert!(!serves(addr("[::1]:22"), addr("127.0.0.1:22")));
    }

    #[test]
    fn a_garbled_table_is_an_error_not_a_panic() {
        assert!(listening("header\n 0: zz:0016 00000000:0000 0A").is_err());
        assert!(listening("header\n 0: 0100007F").is_err());
        assert!(socket_address("0100007F00:0016").is_err());
    }
}
