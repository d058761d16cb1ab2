//! The compound's shared state in PostgreSQL: nodes, camera leases and their
//! history, and the alerts each node has open.
//!
//! Every time that matters is the database's (`now()`), so the nodes' clocks
//! never have to agree. A lease carries a token that grows by one at every
//! take: a node renews only the tokens it took, so a node that was away cannot
//! renew a camera someone else has taken since.

use super::lease::{Free, LeaseRow};
use postgres::{Client, NoTls};
use std::collections::{BTreeMap, BTreeSet};

/// Versioned like the SQLite store's: each entry runs once, in order.
const MIGRATIONS: &[&str] = &[
    // 1: nodes, leases, their history, the alerts open on each node.
    "CREATE TABLE nodes (
        node text PRIMARY KEY,
        started timestamptz NOT NULL,
        seen timestamptz NOT NULL,
        stopped timestamptz
    );
    CREATE TABLE camera_leases (
        camera text PRIMARY KEY,
        node text NOT NULL,
        token bigint NOT NULL,
        taken timestamptz NOT NULL,
        expires timestamptz NOT NULL,
        released boolean NOT NULL DEFAULT false
    );
    CREATE TABLE lease_history (
        id bigserial PRIMARY KEY,
        camera text NOT NULL,
        node text NOT NULL,
        token bigint NOT NULL,
        taken timestamptz NOT NULL,
        from_node text,
        how text NOT NULL,
        until timestamptz
    );
    CREATE INDEX lease_history_camera ON lease_history (camera, token);
    CREATE TABLE open_alerts (
        alert_id text PRIMARY KEY,
        camera text NOT NULL,
        node text NOT NULL,
        payload text NOT NULL,
        updated timestamptz NOT NULL,
        ended_by text,
        ended timestamptz
    );
    CREATE INDEX open_alerts_camera ON open_alerts (camera, node);",
    // 2: which process runs as each node, so two machines given the same
    // `--node` do not take cameras from each other every round.
    "ALTER TABLE nodes ADD COLUMN instance text;",
    // 3: each camera's state as its node last reported it, for every console.
    "CREATE TABLE camera_status (
        camera text PRIMARY KEY,
        node text NOT NULL,
        state text NOT NULL,
        reason text,
        since timestamptz NOT NULL
    );",
    // 4: every node's alerts, copied from its store (see `index.rs`), and
    // where each node's console answers the others.
    "CREATE TABLE alerts (
        id text PRIMARY KEY,
        node text NOT NULL,
        camera text NOT NULL,
        kind text NOT NULL,
        state text NOT NULL,
        start_wall_ms bigint NOT NULL,
        resolved boolean NOT NULL,
        row text NOT NULL,
        copied timestamptz NOT NULL
    );
    CREATE INDEX alerts_start ON alerts (start_wall_ms DESC, id DESC);
    CREATE INDEX alerts_camera ON alerts (camera, start_wall_ms DESC, id DESC);
    CREATE INDEX alerts_kind ON alerts (kind, start_wall_ms DESC, id DESC);
    CREATE INDEX alerts_state ON alerts (state, start_wall_ms DESC, id DESC);
    CREATE INDEX alerts_unresolved ON alerts (start_wall_ms DESC, id DESC) WHERE NOT resolved;
    CREATE TABLE alert_tags (
        alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        text text NOT NULL,
        PRIMARY KEY (text, alert_id)
    );
    CREATE INDEX alert_tags_alert ON alert_tags (alert_id);
    CREATE TABLE alert_copies (
        node text PRIMARY KEY,
        cursor text NOT NULL,
        copied timestamptz NOT NULL
    );
    ALTER TABLE nodes ADD COLUMN url text;",
    // 5: the certificate each node's console serves, for the others to pin.
    "ALTER TABLE nodes ADD COLUMN cert_sha256 text;",
    // 6: takes and resolutions of a down node's alerts, made on another
    // console, for the node to write into its store when it is back.
    "CREATE TABLE queued_acks (
        seq bigserial PRIMARY KEY,
        node text NOT NULL,
        alert_id text NOT NULL,
        ack text NOT NULL,
        queued timestamptz NOT NULL DEFAULT now(),
        applied timestamptz
    );
    CREATE INDEX queued_acks_waiting ON queued_acks (node, seq) WHERE applied IS NULL;
    CREATE INDEX queued_acks_alert ON queued_acks (alert_id, seq) WHERE applied IS NULL;",
    // 7: the console's users, one list for every node (see `users.rs`).
    "CREATE TABLE users (
        name text PRIMARY KEY,
        user_row text NOT NULL,
        changed timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE users_seeded (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        seeded timestamptz NOT NULL DEFAULT now()
    );",
    // 8: console sessions, so a login holds on every console (see `sessions.rs`).
    "CREATE TABLE sessions (
        token_sha256 text PRIMARY KEY,
        user_name text NOT NULL,
        csrf text NOT NULL,
        password_sha256 text NOT NULL,
        last_seen_ms bigint NOT NULL,
        ended boolean NOT NULL DEFAULT false
    );
    CREATE INDEX sessions_idle ON sessions (last_seen_ms);",
    // 9: each alert's whole record beside its row (see `index.rs`): events as
    // published, evidence files, tags with who and when, hold, every take and
    // resolution, escalation, chain of custody. Each list keeps the store's
    // order in `pos`. The nodes copy their stores again to fill them.
    "ALTER TABLE alert_tags ADD COLUMN who text NOT NULL DEFAULT '',
        ADD COLUMN at_ms bigint NOT NULL DEFAULT 0, ADD COLUMN pos integer NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN escalated_ms bigint, ADD COLUMN severity text;
    UPDATE alerts SET severity = (row::jsonb)->>'severity';
    CREATE TABLE alert_events (
        alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        pos integer NOT NULL,
        type text NOT NULL,
        wall_ms bigint NOT NULL,
        payload text NOT NULL,
        PRIMARY KEY (alert_id, pos)
    );
    CREATE TABLE alert_evidence (
        alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        pos integer NOT NULL,
        kind text NOT NULL,
        path text NOT NULL,
        sha256 text NOT NULL,
        bytes bigint NOT NULL,
        created_ms bigint NOT NULL,
        start_media_s double precision,
        duration_s double precision,
        deleted_ms bigint,
        PRIMARY KEY (alert_id, pos)
    );
    CREATE TABLE alert_holds (
        alert_id text PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
        who text NOT NULL,
        reason text NOT NULL,
        at_ms bigint NOT NULL
    );
    CREATE TABLE alert_acks (
        alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        pos integer NOT NULL,
        action text NOT NULL,
        who text NOT NULL,
        note text NOT NULL,
        at_ms bigint NOT NULL,
        outcome text,
        PRIMARY KEY (alert_id, pos)
    );
    CREATE INDEX alert_acks_who ON alert_acks (who, at_ms);
    CREATE INDEX alert_acks_resolved ON alert_acks (at_ms DESC) WHERE action = 'resolve';
    CREATE TABLE alert_custody (
        alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        pos integer NOT NULL,
        at_ms bigint NOT NULL,
        who text NOT NULL,
        action text NOT NULL,
        detail text NOT NULL,
        PRIMARY KEY (alert_id, pos)
    );
    CREATE INDEX alert_custody_who ON alert_custody (who, at_ms);
    UPDATE alert_copies SET cursor = '0-0-0';",
];

/// Brings the shared schema up to date; two nodes starting at once migrate
/// one after the other.
pub(super) fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS vigil_migrations (
            version integer PRIMARY KEY, applied timestamptz NOT NULL)",
    )?;
    let done: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM vigil_migrations",
            &[],
        )?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO vigil_migrations (version, applied) VALUES ($1, now())",
            &[&(i as i32 + 1)],
        )?;
    }
    tx.commit()
}

/// What every console shows of the compound.
pub struct Overview {
    pub cameras: BTreeMap<String, CameraReport>,
    /// Each node: name, live (heartbeat younger than a lease, not stopped),
    /// seconds since its heartbeat.
    pub nodes: Vec<(String, bool, i64)>,
    /// Other nodes' unresolved alerts, newest first: node, the alert as the
    /// index holds it (an `AlertRow` in JSON), and the latest take or
    /// resolution queued for it while its node was down (an `Ack` in JSON).
    pub unresolved_elsewhere: Vec<(String, String, Option<String>)>,
}

/// A camera's state as its node reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraReport {
    pub node: String,
    pub state: String,
    pub reason: Option<String>,
}

/// Any number that is the same on every node: two nodes starting at once
/// migrate one after the other.
const MIGRATION_LOCK: i64 = 0x7669_6769_6c00_0001;

/// An alert the lost node left open, to end as `node_lost`.
#[derive(Debug, Clone)]
pub struct LostAlert {
    pub alert_id: String,
    /// Its last event as published.
    pub payload: String,
    /// When its node last reported it.
    pub wall_ms: i64,
}

pub struct Db {
    client: Client,
    node: String,
    /// This process, among all that ever ran as `node`.
    instance: String,
    lease_s: f64,
}

impl Db {
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn connect(
        config: &postgres::Config,
        node: &str,
        instance: &str,
        lease_s: f64,
    ) -> Result<Db, postgres::Error> {
        let mut db = Db {
            client: config.connect(NoTls)?,
            node: node.into(),
            instance: instance.into(),
            lease_s,
        };
        migrate(&mut db.client)?;
        Ok(db)
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Says this node is alive, unless another process runs under its name
    /// (its heartbeat younger than a lease): then false, and nothing changes.
    pub fn heartbeat(&mut self) -> Result<bool, postgres::Error> {
        let claimed = self.client.query_opt(
            "INSERT INTO nodes (node, started, seen, instance) VALUES ($1, now(), now(), $2)
             ON CONFLICT (node) DO UPDATE SET seen = now(), stopped = NULL, instance = $2
             WHERE nodes.instance IS NULL OR nodes.instance = $2 OR nodes.stopped IS NOT NULL
                OR nodes.seen < now() - $3 * interval '1 second'
             RETURNING node",
            &[&self.node, &self.instance, &self.lease_s],
        )?;
        Ok(claimed.is_some())
    }

    /// Extends the leases of `held` (camera → token); returns those still ours.
    pub fn renew(
        &mut self,
        held: &BTreeMap<String, i64>,
    ) -> Result<BTreeSet<String>, postgres::Error> {
        let cameras: Vec<&String> = held.keys().collect();
        let rows = self.client.query(
            "UPDATE camera_leases SET expires = now() + $2 * interval '1 second'
             WHERE node = $1 AND camera = ANY($3) AND NOT released
             RETURNING camera, token",
            &[&self.node, &self.lease_s, &cameras],
        )?;
        Ok(rows
            .iter()
            .filter(|r| held.get(r.get::<_, &str>(0)) == Some(&r.get::<_, i64>(1)))
            .map(|r| r.get::<_, String>(0))
            .collect())
    }

    /// Every lease, and the nodes whose heartbeat is younger than a lease.
    pub fn state(
        &mut self,
    ) -> Result<(BTreeMap<String, LeaseRow>, BTreeSet<String>), postgres::Error> {
        let leases = self
            .client
            .query(
                "SELECT camera, node, token, expires < now(), released FROM camera_leases",
                &[],
            )?
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    LeaseRow {
                        node: r.get(1),
                        token: r.get(2),
                        expired: r.get(3),
                        released: r.get(4),
                    },
                )
            })
            .collect();
        let live = self
            .client
            .query(
                "SELECT node FROM nodes
                 WHERE stopped IS NULL AND seen > now() - $1 * interval '1 second'",
                &[&self.lease_s],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((leases, live))
    }

    /// Takes `camera` if it is still free the way the plan saw it: the token
    /// it now holds, and the alerts a lost node left open on it (marked ended
    /// by this node, so no other node ends them again).
    pub fn take(
        &mut self,
        camera: &str,
        free: &Free,
    ) -> Result<Option<(i64, Vec<LostAlert>)>, postgres::Error> {
        let mut tx = self.client.transaction()?;
        let row = tx.query_opt(
            "SELECT node, token, expires < now(), released FROM camera_leases
             WHERE camera = $1 FOR UPDATE",
            &[&camera],
        )?;
        let still_free = match (&row, free) {
            (None, Free::Never) => true,
            (Some(r), Free::OwnEarlierRun) => r.get::<_, &str>(0) == self.node,
            (Some(r), Free::Released { from }) => {
                r.get::<_, &str>(0) == from && r.get::<_, bool>(3)
            }
            (Some(r), Free::Lost { from }) => {
                r.get::<_, &str>(0) == from && (r.get::<_, bool>(2) || r.get::<_, bool>(3))
            }
            _ => false,
        };
        if !still_free {
            return Ok(None);
        }
        // The previous holder held it at most until its lease ran out.
        tx.execute(
            "UPDATE lease_history h SET until = LEAST(now(), l.expires) FROM camera_leases l
             WHERE l.camera = $1 AND h.camera = $1 AND h.token = l.token AND h.until IS NULL",
            &[&camera],
        )?;
        let token = row.as_ref().map_or(0, |r| r.get::<_, i64>(1)) + 1;
        tx.execute(
            "INSERT INTO camera_leases (camera, node, token, taken, expires)
             VALUES ($1, $2, $3, now(), now() + $4 * interval '1 second')
             ON CONFLICT (camera) DO UPDATE SET node = $2, token = $3, taken = now(),
               expires = now() + $4 * interval '1 second', released = false",
            &[&camera, &self.node, &token, &self.lease_s],
        )?;
        let (from, how) = match free {
            Free::Never => (None, "new"),
            Free::OwnEarlierRun => (Some(self.node.clone()), "restart"),
            Free::Released { from } => (Some(from.clone()), "released"),
            Free::Lost { from } => (Some(from.clone()), "lost"),
        };
        tx.execute(
            "INSERT INTO lease_history (camera, node, token, taken, from_node, how)
             VALUES ($1, $2, $3, now(), $4, $5)",
            &[&camera, &self.node, &token, &from, &how],
        )?;
        let lost = match free {
            Free::Lost { from } => tx
                .query(
                    "UPDATE open_alerts SET ended_by = $3, ended = now()
                     WHERE camera = $1 AND node = $2 AND ended_by IS NULL
                     RETURNING alert_id, payload,
                       (EXTRACT(EPOCH FROM updated) * 1000)::bigint",
                    &[&camera, from, &self.node],
                )?
                .iter()
                .map(|r| LostAlert {
                    alert_id: r.get(0),
                    payload: r.get(1),
                    wall_ms: r.get(2),
                })
                .collect(),
            _ => Vec::new(),
        };
        // The index shows them as their node will record them when it is
        // back (interrupted, ended as node_lost), not open meanwhile.
        let ids: Vec<&str> = lost
            .iter()
            .map(|l: &LostAlert| l.alert_id.as_str())
            .collect();
        if !ids.is_empty() {
            tx.execute(
                "UPDATE alerts SET state = 'interrupted',
                     row = jsonb_set(row::jsonb, '{state}', '\"interrupted\"')::text
                 WHERE id = ANY($1) AND state = 'open'",
                &[&ids],
            )?;
        }
        tx.commit()?;
        Ok(Some((token, lost)))
    }

    /// Gives cameras up at a clean stop or when their source ended here.
    pub fn release(&mut self, cameras: &BTreeMap<String, i64>) -> Result<(), postgres::Error> {
        let mut tx = self.client.transaction()?;
        for (camera, token) in cameras {
            tx.execute(
                "UPDATE camera_leases SET released = true, expires = now()
                 WHERE camera = $1 AND node = $2 AND token = $3",
                &[camera, &self.node, token],
            )?;
            tx.execute(
                "UPDATE lease_history SET until = now()
                 WHERE camera = $1 AND token = $2 AND until IS NULL",
                &[camera, token],
            )?;
        }
        tx.commit()
    }

    /// This node's word on a camera it runs.
    pub fn report_camera(
        &mut self,
        camera: &str,
        state: &str,
        reason: Option<&str>,
    ) -> Result<(), postgres::Error> {
        self.client.execute(
            "INSERT INTO camera_status (camera, node, state, reason, since)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (camera) DO UPDATE SET node = $2, state = $3, reason = $4, since = now()",
            &[&camera, &self.node, &state, &reason],
        )?;
        Ok(())
    }

    /// Every camera's last reported state, and every node with whether it
    /// is live and how many seconds ago it was heard.
    pub fn overview(&mut self) -> Result<Overview, postgres::Error> {
        let cameras = self
            .client
            .query("SELECT camera, node, state, reason FROM camera_status", &[])?
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    CameraReport {
                        node: r.get(1),
                        state: r.get(2),
                        reason: r.get(3),
                    },
                )
            })
            .collect();
        let nodes = self
            .client
            .query(
                "SELECT node, stopped IS NULL AND seen > now() - $1 * interval '1 second',
                        EXTRACT(EPOCH FROM now() - seen)::bigint
                 FROM nodes ORDER BY node",
                &[&self.lease_s],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        // From the index: every alert of another node nobody has resolved,
        // open or not (an alert that ended still waits for someone to close it).
        let unresolved_elsewhere = self
            .client
            .query(
                "SELECT a.node, a.row, q.ack FROM alerts a
                 LEFT JOIN LATERAL (SELECT ack FROM queued_acks
                                    WHERE alert_id = a.id AND applied IS NULL
                                    ORDER BY seq DESC LIMIT 1) q ON true
                 WHERE a.node <> $1 AND NOT a.resolved
                 ORDER BY a.start_wall_ms DESC, a.id DESC LIMIT 200",
                &[&self.node],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(Overview {
            cameras,
            nodes,
            unresolved_elsewhere,
        })
    }

    pub fn stopped(&mut self) -> Result<(), postgres::Error> {
        self.client.execute(
            "UPDATE nodes SET stopped = now() WHERE node = $1",
            &[&self.node],
        )?;
        Ok(())
    }

    /// An alert opened or changed on this node (`payload`: its latest event).
    pub fn alert_open(
        &mut self,
        alert_id: &str,
        camera: &str,
        payload: &str,
    ) -> Result<(), postgres::Error> {
        self.client.execute(
            "INSERT INTO open_alerts (alert_id, camera, node, payload, updated)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (alert_id) DO UPDATE SET payload = $4, updated = now()
             WHERE open_alerts.ended_by IS NULL",
            &[&alert_id, &camera, &self.node, &payload],
        )?;
        Ok(())
    }

    pub fn alert_ended(&mut self, alert_id: &str) -> Result<(), postgres::Error> {
        self.client.execute(
            "DELETE FROM open_alerts WHERE alert_id = $1 AND node = $2",
            &[&alert_id, &self.node],
        )?;
        Ok(())
    }

    /// At start: forgets the alerts an earlier run of this node left open,
    /// returning those another node has already ended as `node_lost` (this
    /// node must not end them a second time).
    pub fn settle_earlier_run(&mut self) -> Result<Vec<String>, postgres::Error> {
        Ok(self
            .client
            .query(
                "DELETE FROM open_alerts WHERE node = $1 RETURNING alert_id, ended_by",
                &[&self.node],
            )?
            .iter()
            .filter(|r| r.get::<_, Option<String>>(1).is_some())
            .map(|r| r.get(0))
            .collect())
    }
}
