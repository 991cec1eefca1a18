//! `BatchedWrites`: the server side of a connection, so that the answers finished in one
//! scheduler turn leave in one `write` instead of one each.
//!
//! hyper's HTTP/2 server flushes from its connection task; each answer's stream task wakes
//! that task, which tokio then runs at once (its LIFO slot), so each answer paid for its own
//! `writev` (and on loopback for the receiver's TCP path too). Here the first write of every
//! flush yields once: the connection task goes to the back of the run queue, the answers that
//! become ready meanwhile join the same buffer, and one write carries them all. It adds no
//! wait when nothing else is runnable. Writes are not vectored, so h2 copies frames of up to
//! 1 KiB into its buffer instead of flushing at each DATA frame (keel-bench's client does the
//! same: docs/benchmarks.md, "The client's own cost").
//!
//! Contract: bytes pass through unchanged and in order; every `Pending` this type returns
//! has woken its task first, so a connection never stalls on it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A TCP stream whose first write of each flush waits one scheduler turn.
pub(crate) struct BatchedWrites {
    stream: TcpStream,
    /// The current flush has yielded once already.
    yielded: bool,
}

impl BatchedWrites {
    pub(crate) fn new(stream: TcpStream) -> Self {
        BatchedWrites {
            stream,
            yielded: false,
        }
    }
}

impl AsyncRead for BatchedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BatchedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer drained its buffer: the next write starts a new flush.
        self.yielded = false;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    // `is_write_vectored` keeps its default, false: see the module docs.
}

impl Connected for BatchedWrites {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    // Guards the contract: the yield is invisible to the bytes and never stalls a writer.
    #[tokio::test]
    async fn bytes_pass_through_in_order_across_yielding_flushes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let reader = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.expect("accept");
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.expect("read");
            got
        });
        let mut writer = BatchedWrites::new(TcpStream::connect(addr).await.expect("connect"));
        let mut sent = Vec::new();
        for round in 0..50u8 {
            let chunk: Vec<u8> = (0..=round).map(|i| i.wrapping_mul(round)).collect();
            writer.write_all(&chunk).await.expect("write");
            writer.flush().await.expect("flush");
            sent.extend_from_slice(&chunk);
        }
        writer.shutdown().await.expect("shutdown");
        assert_eq!(reader.await.expect("reader"), sent);
    }
}
