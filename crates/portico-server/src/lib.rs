//! Listeners and the HTTP/1.1 connection layer.
