//! A PostgreSQL database of a test's own on the machine's server
//! (`PORTICO_TEST_DATABASE_URL`), which the test may break: its connections can be cut and
//! refused from the server side (a real failure of the store in the middle of the work), and
//! taken again.

use tokio_postgres::{Client, NoTls};

/// A scratch database, dropped with [`Scratch::drop_database`].
pub struct Scratch {
    admin: Client,
    name: String,
    /// Its URL.
    pub url: String,
}

impl Scratch {
    /// Creates `portico_{tag}_{pid}`; `None` outside CI when no server is configured (CI
    /// sets `PORTICO_TEST_DATABASE_URL`, and a missing one fails the test there).
    pub async fn create(tag: &str) -> Option<Scratch> {
        let Ok(server) = std::env::var("PORTICO_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PORTICO_TEST_DATABASE_URL is not set; .ci/run sets it"
            );
            eprintln!("PORTICO_TEST_DATABASE_URL is not set: PostgreSQL test not run");
            return None;
        };
        let name = format!("portico_{tag}_{}", std::process::id());
        let (admin, conn) = tokio_postgres::connect(&server, NoTls).await.unwrap();
        tokio::spawn(conn);
        // Two statements: CREATE DATABASE cannot share a transaction.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("a PostgreSQL URL names a database: {server}"),
        };
        Some(Scratch { admin, name, url })
    }

    /// Cuts every connection to the database from the server side, and refuses new ones
    /// until [`Scratch::allow_connections`]: the store is down.
    pub async fn refuse_connections(&self) {
        for sql in [
            format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ),
        ] {
            self.admin.batch_execute(&sql).await.unwrap();
        }
    }

    /// Takes connections again: the store is back.
    pub async fn allow_connections(&self) {
        self.admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .await
            .unwrap();
    }

    /// Drops the database (whoever is still connected).
    pub async fn drop_database(self) {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}
