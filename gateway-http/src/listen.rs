//! The server's listening sockets: one per worker thread.
//!
//! On Linux each worker gets its own socket in one `SO_REUSEPORT` group,
//! and the kernel spreads new connections over them by a hash of their
//! addresses, as nginx's `reuseport` and Envoy do. When the workers shared
//! one socket instead, whichever worker was awake when a burst of
//! connections came in accepted nearly all of it (waking the other takes
//! tens of µs here, accepting one a few): in some bench rounds all 64 of
//! wrk's connections landed on one worker, which saturated its core while
//! the other idled, and the round lost a fifth of its requests per
//! second. Elsewhere `SO_REUSEPORT` does not balance, and the workers
//! share one socket.
//!
//! A socket group would also let a second gateway started on the same port
//! join it silently and take a share of the connections. So an explicit
//! port is first bound on its own, without `SO_REUSEPORT`, and a port in
//! use is refused as it was before.

use std::io;
use std::net::{SocketAddr, TcpListener};

/// How many connections may wait to be accepted, per socket.
#[cfg(any(target_os = "linux", target_os = "android"))]
const BACKLOG: i32 = 1024;

/// `count` listening sockets for `address` (at least one), non-blocking,
/// and the address they listen on (the port chosen when 0 was asked for).
pub(crate) fn listeners(
    address: SocketAddr,
    count: usize,
) -> io::Result<(SocketAddr, Vec<TcpListener>)> {
    let first = first_listener(address)?;
    let local = first.local_addr()?;
    let mut all = Vec::with_capacity(count.max(1));
    all.push(first);
    while all.len() < count {
        all.push(another_listener(&all[0], local)?);
    }
    Ok((local, all))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn first_listener(address: SocketAddr) -> io::Result<TcpListener> {
    if address.port() != 0 {
        // Fails when anyone holds the port, with or without SO_REUSEPORT.
        drop(TcpListener::bind(address)?);
    }
    group_member(address)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn another_listener(_first: &TcpListener, local: SocketAddr) -> io::Result<TcpListener> {
    group_member(local)
}

/// A listening socket on `address` in its `SO_REUSEPORT` group.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn group_member(address: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // As std's `TcpListener::bind` does: a restarted gateway can listen
    // again while its old connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn first_listener(address: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn another_listener(first: &TcpListener, _local: SocketAddr) -> io::Result<TcpListener> {
    first.try_clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpStream};

    fn loopback(port: u16) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, port).into()
    }

    #[test]
    fn every_socket_listens_on_the_chosen_port() {
        let (local, sockets) = listeners(loopback(0), 3).expect("bound");
        assert_ne!(local.port(), 0);
        assert_eq!(sockets.len(), 3);
        for socket in &sockets {
            assert_eq!(socket.local_addr().expect("address"), local);
        }
        // A connection is queued on one of them.
        let _client = TcpStream::connect(local).expect("connected");
        let accepted = (0..1000).find_map(|_| {
            sockets
                .iter()
                .find_map(|socket| socket.accept().ok())
                .or_else(|| {
                    std::thread::yield_now();
                    None
                })
        });
        assert!(accepted.is_some(), "no socket accepted the connection");
    }

    #[test]
    fn a_port_in_use_is_refused() {
        let (local, _sockets) = listeners(loopback(0), 2).expect("bound");
        let err = listeners(local, 2).expect_err("the port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let plain = TcpListener::bind(loopback(0)).expect("bound");
        let taken = plain.local_addr().expect("address");
        let err = listeners(taken, 2).expect_err("the port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    }

    #[test]
    fn one_socket_at_least() {
        let (_, sockets) = listeners(loopback(0), 0).expect("bound");
        assert_eq!(sockets.len(), 1);
    }
}
