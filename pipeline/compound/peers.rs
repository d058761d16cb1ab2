//! What a console asks the compound while serving a page: which node recorded
//! an alert (and where its console answers), and the search over every node's
//! alerts. Blocking calls, one connection, made again after it broke: the
//! console runs them on its blocking pool.

use super::forward::Secret;
use super::index::{self, Owner};
use super::{CompoundConfig, CompoundError};
use crate::store::{AlertFilter, AlertRecord, AlertRow, Handled};
use postgres::{Client, NoTls};
use std::path::Path;
use std::sync::Mutex;

pub struct Peers {
    pg: postgres::Config,
    /// This process's node (or `console-<host>` for `vigil console`).
    pub me: String,
    lease_s: f64,
    /// `None` without `[compound] secret_file`: consoles cannot ask each other.
    pub secret: Option<Secret>,
    client: Mutex<Option<Client>>,
}

impl Peers {
    pub fn new(config: &CompoundConfig, base: &Path, me: &str) -> Result<Peers, CompoundError> {
        let secret = match &config.secret_file {
            Some(file) => Some(Secret::read(&base.join(file))?),
            None => None,
        };
        Ok(Peers {
            pg: config.pg_config(base)?,
            me: me.into(),
            lease_s: config.lease_s,
            secret,
            client: Mutex::new(None),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            let mut client = self.pg.connect(NoTls)?;
            super::pg::migrate(&mut client)?;
            *slot = Some(client);
        }
        let Some(client) = slot.as_mut() else {
            unreachable!("connected above")
        };
        let result = f(client);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// The node that recorded alert `id`, if the index has it.
    pub fn owner(&self, id: &str) -> Result<Option<Owner>, postgres::Error> {
        let lease_s = self.lease_s;
        self.with(|c| index::owner(c, id, lease_s))
    }

    /// Queues `ack` of alert `id` for its node `node`, which is down.
    pub fn queue_ack(
        &self,
        node: &str,
        id: &str,
        ack: &crate::store::Ack,
    ) -> Result<(), postgres::Error> {
        self.with(|c| index::queue_ack(c, node, id, ack))
    }

    /// Adds or replaces user `name` (its console record) in the compound's users.
    pub fn put_user(&self, name: &str, record: &str) -> Result<(), postgres::Error> {
        self.with(|c| super::users::put(c, name, record))
    }

    /// Stores or renews console session `key`; `true` if it was ended on
    /// some console.
    pub fn renew_session(
        &self,
        key: &str,
        session: &crate::store::StoredSession,
        idle_before_ms: i64,
    ) -> Result<bool, postgres::Error> {
        self.with(|c| super::sessions::renew(c, key, session, idle_before_ms))
    }

    /// Console session `key`, if a console of the compound stored it and it
    /// was not ended.
    pub fn session(
        &self,
        key: &str,
    ) -> Result<Option<crate::store::StoredSession>, postgres::Error> {
        self.with(|c| super::sessions::find(c, key))
    }

    /// Ends console session `key` on every console.
    pub fn end_session(&self, key: &str, idle_before_ms: i64) -> Result<(), postgres::Error> {
        self.with(|c| super::sessions::end(c, key, idle_before_ms))
    }

    /// Alert `id`'s whole record as its node last copied it, with that node.
    pub fn record(&self, id: &str) -> Result<Option<(String, AlertRecord)>, postgres::Error> {
        self.with(|c| index::record(c, id))
    }

    /// Every node's alerts that started in `[from_ms, to_ms)`, for the shift report.
    pub fn shift(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Handled>, postgres::Error> {
        self.with(|c| index::shift(c, from_ms, to_ms))
    }

    /// Every node's alerts resolved since `since_ms`, latest first.
    pub fn resolved_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AlertRow>, postgres::Error> {
        self.with(|c| index::resolved_since(c, since_ms, limit))
    }

    /// Where node `node`'s console answers, and whether it is live.
    pub fn node(&self, node: &str) -> Result<Option<Owner>, postgres::Error> {
        let lease_s = self.lease_s;
        self.with(|c| index::node(c, node, lease_s))
    }

    /// Every node's alerts matching `filter`, newest first, with their node.
    pub fn search(&self, filter: &AlertFilter) -> Result<Vec<(String, AlertRow)>, postgres::Error> {
        self.with(|c| index::search(c, filter))
    }
}
