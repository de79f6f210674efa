//! A client connection's byte stream: plain TCP, or TLS over it.
//!
//! One concrete type rather than a generic parameter, so the request pipeline, request bodies
//! and WebSocket relays see one type whatever the listener; the two cases differ only in how
//! an idle connection waits (see `ClientIo::read_idle`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::spare;

/// A client connection.
pub enum ClientIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: a TLS session is large, and most connections are one or the
    /// other for their whole life).
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientIo {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientIo::Plain(s) => s,
            ClientIo::Tls(s) => s.get_ref().0,
        }
    }

    /// The protocol the client and Portico agreed on with ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            ClientIo::Plain(_) => None,
            ClientIo::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }

    /// Waits for the first bytes of a request and reads them into `buf`. Plain TCP waits for
    /// readiness before it takes a buffer, so an idle connection holds none; TLS cannot tell
    /// from the socket whether decrypted bytes are waiting, so it takes one and reads.
    pub(crate) async fn read_idle(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ClientIo::Plain(tcp) => loop {
                // Readiness can be reported with nothing to read (a fresh connection, or
                // readiness left from the last read): the buffer goes back meanwhile.
                spare::release_read(buf);
                tcp.readable().await?;
                spare::reserve_read(buf);
                match tcp.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    read => return read,
                }
            },
            ClientIo::Tls(tls) => {
                spare::reserve_read(buf);
                tls.read_buf(buf).await
            }
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Plain(s) => s.is_write_vectored(),
            ClientIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
