//! A connection's byte stream: plain TCP, or TLS over it ([`MaybeTls`]), for clients
//! ([`ClientIo`]) and upstream targets alike.
//!
//! One concrete type per side rather than a generic parameter, so the request pipeline,
//! request bodies and WebSocket relays see one type whatever the listener; on the client side
//! the two cases differ only in how an idle connection waits (see `ClientIo::read_idle`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

use crate::spare;

/// A connection: plain TCP, or TLS over TCP.
pub enum MaybeTls<T> {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: a TLS session is large, and most connections are one or the
    /// other for their whole life).
    Tls(Box<T>),
}

/// A client connection.
pub type ClientIo = MaybeTls<server::TlsStream<TcpStream>>;

/// A TLS stream over TCP, either side.
pub trait TlsOverTcp: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream;
    /// The protocol both sides agreed on with ALPN, if any.
    fn alpn(&self) -> Option<&[u8]>;
}

impl TlsOverTcp for server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }

    fn alpn(&self) -> Option<&[u8]> {
        self.get_ref().1.alpn_protocol()
    }
}

impl TlsOverTcp for client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }

    fn alpn(&self) -> Option<&[u8]> {
        self.get_ref().1.alpn_protocol()
    }
}

impl<T: TlsOverTcp> MaybeTls<T> {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(s) => s.tcp(),
        }
    }

    /// The protocol the two sides agreed on with ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(s) => s.alpn(),
        }
    }
}

impl ClientIo {
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

impl<T: AsyncRead + Unpin> AsyncRead for MaybeTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
