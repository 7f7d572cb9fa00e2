//! The rtnetlink conversation: a `NETLINK_ROUTE` socket that sends a dump request and
//! gathers the replies until `NLMSG_DONE`, asking again when a concurrent change interrupted
//! the dump (`NLM_F_DUMP_INTR`).

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkMessage, NetlinkPayload, NLMSG_ALIGNTO, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::NetworkError;

/// How many times a dump interrupted by a concurrent change is asked for before giving up.
pub(super) const DUMP_ATTEMPTS: usize = 5;

/// The receive buffer offered to the kernel: the largest datagram it makes for a dump.
const RECEIVE_BUFFER: usize = 32 * 1024;

/// A synchronous `NETLINK_ROUTE` socket connected to the kernel.
pub(super) struct RouteSocket {
    /// The socket.
    socket: Socket,
    /// The sequence number of the last request sent.
    sequence: u32,
}

impl RouteSocket {
    /// Open a socket in the calling thread's network namespace.
    pub(super) fn open() -> Result<RouteSocket, NetworkError> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(NetworkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetworkError::Socket)?;
        Ok(RouteSocket {
            socket,
            sequence: 0,
        })
    }

    /// The messages of a complete dump for `request`, asked again while interrupted.
    pub(super) fn dump(
        &mut self,
        name: &'static str,
        request: &RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetworkError> {
        for _ in 0..DUMP_ATTEMPTS {
            if let Some(messages) = self.dump_once(name, request)? {
                return Ok(messages);
            }
        }
        Err(NetworkError::Interrupted { request: name })
    }

    /// The messages of one dump for `request`, or `None` if it was interrupted.
    fn dump_once(
        &mut self,
        name: &'static str,
        request: &RouteNetlinkMessage,
    ) -> Result<Option<Vec<RouteNetlinkMessage>>, NetworkError> {
        let io_error = |source| NetworkError::Io {
            request: name,
            source,
        };
        let decode_error = |detail: String| NetworkError::Decode {
            request: name,
            detail,
        };
        // The kernel reports errors as negative errnos.
        let kernel_error = |code: i32| NetworkError::Kernel {
            request: name,
            errno: code.saturating_neg(),
        };

        self.sequence = self.sequence.wrapping_add(1);
        let mut message = NetlinkMessage::from(request.clone());
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.header.sequence_number = self.sequence;
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        retry_interrupted(|| self.socket.send(&bytes, 0)).map_err(io_error)?;

        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let datagram = self.receive().map_err(io_error)?;
            if datagram.is_empty() {
                return Err(decode_error("empty datagram before NLMSG_DONE".to_string()));
            }
            for part in split_datagram(&datagram).map_err(decode_error)? {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(part)
                    .map_err(|e| decode_error(e.to_string()))?;
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Done(done) if done.code < 0 => {
                        return Err(kernel_error(done.code));
                    }
                    NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(replies)),
                    NetlinkPayload::Error(error) => {
                        if let Some(code) = error.code {
                            return Err(kernel_error(code.get()));
                        }
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(decode_error("NLMSG_OVERRUN".to_string()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// One whole datagram, however large.
    fn receive(&self) -> io::Result<Vec<u8>> {
        // Peeking with a large buffer also lets the kernel pack more messages per datagram.
        let mut buffer: Vec<u8> = Vec::with_capacity(RECEIVE_BUFFER);
        let (size, _) = retry_interrupted(|| {
            buffer.clear();
            self.socket
                .recv_from(&mut buffer, libc::MSG_PEEK | libc::MSG_TRUNC)
        })?;
        buffer = Vec::with_capacity(size.max(RECEIVE_BUFFER));
        let (received, _) = retry_interrupted(|| {
            buffer.clear();
            self.socket.recv_from(&mut buffer, 0)
        })?;
        if received != buffer.len() {
            return Err(io::Error::other("netlink datagram was truncated"));
        }
        Ok(buffer)
    }
}

/// `call`'s result, calling it again while a signal interrupts it (`EINTR`).
fn retry_interrupted<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// The netlink messages packed in one datagram.
fn split_datagram(datagram: &[u8]) -> Result<Vec<&[u8]>, String> {
    let align = usize::from(NLMSG_ALIGNTO);
    let mut parts = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let buffer = NetlinkBuffer::new_checked(rest).map_err(|e| e.to_string())?;
        let length = usize::try_from(buffer.length()).map_err(|e| e.to_string())?;
        parts.push(&rest[..length]);
        let aligned = length.div_ceil(align) * align;
        rest = rest.get(aligned..).unwrap_or_default();
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::LinkMessage;
    use rstest::rstest;

    #[rstest]
    #[case(&[], 0)]
    #[case(&[16, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0], 1)]
    #[case(&[20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
             16, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0], 2)]
    fn datagrams_are_split(#[case] datagram: &[u8], #[case] count: usize) {
        assert_eq!(split_datagram(datagram).unwrap().len(), count);
    }

    #[test]
    fn truncated_datagrams_are_rejected() {
        assert!(split_datagram(&[40, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn kernel_errors_carry_the_errno() {
        // With strict checking, the kernel refuses a link dump filtered by index.
        let mut socket = RouteSocket::open().unwrap();
        socket.socket.set_netlink_get_strict_chk(true).unwrap();
        let mut request = LinkMessage::default();
        request.header.index = 1;
        let error = socket
            .dump("RTM_GETLINK", &RouteNetlinkMessage::GetLink(request))
            .unwrap_err();
        assert!(
            matches!(
                error,
                NetworkError::Kernel {
                    request: "RTM_GETLINK",
                    errno: libc::EINVAL
                }
            ),
            "{error}"
        );
        // The socket is still usable afterwards.
        socket.socket.set_netlink_get_strict_chk(false).unwrap();
        let links = socket
            .dump(
                "RTM_GETLINK",
                &RouteNetlinkMessage::GetLink(LinkMessage::default()),
            )
            .unwrap();
        assert!(!links.is_empty());
    }
}
