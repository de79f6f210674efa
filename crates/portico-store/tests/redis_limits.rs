//! Rate-limit decisions in the machine's real Redis (`PORTICO_TEST_REDIS_URL`; `.ci/run` sets
//! it), and what a Redis that is down, silent or talking garbage gets: an error within the
//! budget, never a wait.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use portico_store::{RedisLimits, SharedDecision};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn redis_url() -> Option<String> {
    match std::env::var("PORTICO_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PORTICO_TEST_REDIS_URL is not set; .ci/run sets it")
        }
        Err(_) => {
            eprintln!("PORTICO_TEST_REDIS_URL is not set: Redis not tested");
            None
        }
    }
}

fn unique_key() -> Vec<u8> {
    format!(
        "portico:test:{}:{:020}",
        std::process::id(),
        fastrand::u64(..)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_burst_then_a_wait_of_at_most_one_interval() {
    let Some(url) = redis_url() else { return };
    let limits = RedisLimits::new(&url, Duration::from_secs(2)).unwrap();
    let key = unique_key();
    let interval = Duration::from_secs(10);
    for expected in [2, 1, 0] {
        match limits.check(&key, interval, 3).await.unwrap() {
            SharedDecision::Allowed { remaining, reset } => {
                assert_eq!(remaining, expected);
                assert!(reset <= Duration::from_secs(30), "{reset:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    match limits.check(&key, interval, 3).await.unwrap() {
        SharedDecision::Limited { retry_after, .. } => {
            // Redis's clock moved a little since the first request: just under 10 s.
            assert!(retry_after <= interval && retry_after > Duration::from_secs(9));
        }
        other => panic!("{other:?}"),
    }
    // Two connections (two nodes) share the count.
    let other_node = RedisLimits::new(&url, Duration::from_secs(2)).unwrap();
    assert!(matches!(
        other_node.check(&key, interval, 3).await.unwrap(),
        SharedDecision::Limited { .. }
    ));
    // Forgotten by name, or by prefix: the whole burst is back.
    other_node
        .forget(std::slice::from_ref(&key), None)
        .await
        .unwrap();
    assert!(matches!(
        limits.check(&key, interval, 3).await.unwrap(),
        SharedDecision::Allowed { remaining: 2, .. }
    ));
    let prefix = &key[..key.len() - 4];
    limits.forget(&[], Some(prefix)).await.unwrap();
    assert!(matches!(
        limits.check(&key, interval, 3).await.unwrap(),
        SharedDecision::Allowed { remaining: 2, .. }
    ));
}

#[tokio::test]
async fn a_redis_that_is_down_silent_or_garbled_is_an_error_within_the_budget() {
    let budget = Duration::from_millis(200);
    // Down: nothing listens.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let down = RedisLimits::new(&format!("redis://{closed}"), budget).unwrap();
    assert!(down.check(b"k", Duration::from_secs(1), 1).await.is_err());
    // Silent: accepts, reads, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = silent.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    let hung = RedisLimits::new(&format!("redis://{silent_addr}"), budget).unwrap();
    assert!(hung.check(b"k", Duration::from_secs(1), 1).await.is_err());
    // Garbled: answers every command with a string where the script's array should be.
    let garbled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbled_addr = garbled.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = garbled.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while s.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    if s.write_all(b"+surprise\r\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let garbage = RedisLimits::new(&format!("redis://{garbled_addr}"), budget).unwrap();
    assert!(
        garbage
            .check(b"k", Duration::from_secs(1), 1)
            .await
            .is_err()
    );
}

/// A TCP forwarder to the real Redis that the test turns off and on: Redis going away and
/// coming back, as a node sees it.
struct Forwarder {
    tasks: tokio::task::JoinSet<()>,
}

impl Forwarder {
    async fn start(on: std::net::SocketAddr, to: String) -> Forwarder {
        let listener = tokio::net::TcpListener::bind(on).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel();
        tasks.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = conn_tx.send(client);
            }
        });
        let mut forwarder = Forwarder { tasks };
        let to2 = to.clone();
        forwarder.tasks.spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Some(mut client) = conn_rx.recv().await {
                let to = to2.clone();
                pipes.spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        forwarder
    }

    async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

#[tokio::test]
async fn decisions_come_back_by_themselves_when_redis_returns() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let limits = RedisLimits::new(&format!("redis://{port}"), Duration::from_secs(1))
        .unwrap()
        .reconnecting_every(Duration::ZERO);
    let key = unique_key();
    let interval = Duration::from_secs(60);
    // Redis is away: an error, at once.
    assert!(limits.check(&key, interval, 100).await.is_err());
    // It comes back: the next decision connects and succeeds.
    let forwarder = Forwarder::start(port, target.clone()).await;
    assert!(matches!(
        limits.check(&key, interval, 100).await.unwrap(),
        SharedDecision::Allowed { remaining: 99, .. }
    ));
    // It goes away with a connection open: that decision fails, and the connection is dropped.
    forwarder.stop().await;
    assert!(limits.check(&key, interval, 100).await.is_err());
    // Back again: decisions resume, with the state Redis kept.
    let forwarder = Forwarder::start(port, target).await;
    let mut recovered = None;
    // The first decision may meet the connection that broke; the one after it reconnects.
    for _ in 0..2 {
        if let Ok(d) = limits.check(&key, interval, 100).await {
            recovered = Some(d);
            break;
        }
    }
    assert!(
        matches!(
            recovered,
            Some(SharedDecision::Allowed { remaining: 98, .. })
        ),
        "{recovered:?}"
    );
    forwarder.stop().await;
}
