//! Which cameras a node should take, from what PostgreSQL and the broker say.
//!
//! Pure: the node thread reads the lease table, the live nodes and the
//! broker's availability messages, and this decides. Three rules keep a camera
//! on exactly one node without flapping:
//! - a camera pinned to a node (`node = "…"` in its config) is only ever run there;
//! - a lease that is still valid is never taken, and neither is an expired one
//!   whose holder the broker still sees online (it lost PostgreSQL, not its
//!   cameras, and keeps running them);
//! - unpinned cameras are shared: a node takes free ones only up to its share,
//!   the unpinned count divided by the live nodes, rounded up. A node that
//!   comes back finds its cameras held and valid, so it takes nothing back.

use std::collections::{BTreeMap, BTreeSet};

/// One row of `camera_leases`, as the node read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub node: String,
    pub token: i64,
    /// `expires < now()` on the database's clock.
    pub expired: bool,
    /// Given up by its node on a clean stop: free at once.
    pub released: bool,
}

/// What a node knows when it plans.
pub struct View<'a> {
    pub me: &'a str,
    /// Every camera of the compound with the node it is pinned to, if any.
    pub cameras: &'a [(String, Option<String>)],
    pub leases: &'a BTreeMap<String, LeaseRow>,
    /// Nodes whose heartbeat is younger than a lease, this one included.
    pub live_nodes: &'a BTreeSet<String>,
    /// Cameras this process runs now.
    pub held: &'a BTreeSet<String>,
    /// The broker's word on a node: `Some(true)` online, `Some(false)` its
    /// will was published, `None` not known (or this node cannot ask the broker).
    pub online: &'a dyn Fn(&str) -> Option<bool>,
    /// Cameras this process will not take again (their source failed or ended here).
    pub given_up: &'a BTreeSet<String>,
}

/// Why a camera is free to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Free {
    /// No node ever held it.
    Never,
    /// Its node stopped cleanly and gave it up.
    Released { from: String },
    /// Held by this node's name before this process started (a restart).
    OwnEarlierRun,
    /// Its node stopped renewing and the broker does not see it: lost.
    Lost { from: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    pub camera: String,
    pub free: Free,
}

/// Whether `camera` may be taken now, and why.
pub fn free(view: &View<'_>, camera: &str) -> Option<Free> {
    let Some(row) = view.leases.get(camera) else {
        return Some(Free::Never);
    };
    if row.node == view.me {
        // Ours but not running here: a previous run of this node.
        return (!view.held.contains(camera)).then_some(Free::OwnEarlierRun);
    }
    if row.released {
        return Some(Free::Released {
            from: row.node.clone(),
        });
    }
    if row.expired && (view.online)(&row.node) != Some(true) {
        return Some(Free::Lost {
            from: row.node.clone(),
        });
    }
    None
}

/// The cameras to take now, in config order.
pub fn to_take(view: &View<'_>) -> Vec<Take> {
    let unpinned = view.cameras.iter().filter(|(_, pin)| pin.is_none()).count();
    let nodes = view.live_nodes.len().max(1);
    let share = unpinned.div_ceil(nodes);
    let mut unpinned_held = view
        .cameras
        .iter()
        .filter(|(id, pin)| pin.is_none() && view.held.contains(id))
        .count();
    let mut takes = Vec::new();
    for (camera, pin) in view.cameras {
        if view.held.contains(camera) || view.given_up.contains(camera) {
            continue;
        }
        match pin {
            Some(node) if node != view.me => continue,
            Some(_) => {}
            None if unpinned_held >= share => continue,
            None => {}
        }
        if let Some(free) = free(view, camera) {
            if pin.is_none() {
                unpinned_held += 1;
            }
            takes.push(Take {
                camera: camera.clone(),
                free,
            });
        }
    }
    takes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, expired: bool) -> LeaseRow {
        LeaseRow {
            node: node.into(),
            token: 1,
            expired,
            released: false,
        }
    }

    struct Case {
        cameras: Vec<(String, Option<String>)>,
        leases: BTreeMap<String, LeaseRow>,
        live: BTreeSet<String>,
        held: BTreeSet<String>,
        online: BTreeMap<String, bool>,
    }

    impl Case {
        fn new(cameras: &[(&str, Option<&str>)], live: &[&str]) -> Case {
            Case {
                cameras: cameras
                    .iter()
                    .map(|(c, p)| (c.to_string(), p.map(String::from)))
                    .collect(),
                leases: BTreeMap::new(),
                live: live.iter().map(|s| s.to_string()).collect(),
                held: BTreeSet::new(),
                online: BTreeMap::new(),
            }
        }

        fn takes(&self, me: &str) -> Vec<(String, Free)> {
            let online = |n: &str| self.online.get(n).copied();
            let view = View {
                me,
                cameras: &self.cameras,
                leases: &self.leases,
                live_nodes: &self.live,
                held: &self.held,
                online: &online,
                given_up: &BTreeSet::new(),
            };
            to_take(&view)
                .into_iter()
                .map(|t| (t.camera, t.free))
                .collect()
        }
    }

    #[test]
    fn two_fresh_nodes_split_the_unpinned_cameras_and_keep_pins() {
        let c = Case::new(
            &[
                ("a", None),
                ("b", None),
                ("c", None),
                ("pinned", Some("gate-2")),
            ],
            &["gate-1", "gate-2"],
        );
        let got = c.takes("gate-1");
        assert_eq!(
            got,
            [("a".into(), Free::Never), ("b".into(), Free::Never)],
            "share of 3 over 2 nodes is 2; never the other node's pin"
        );
        let got = c.takes("gate-2");
        assert!(got.contains(&("pinned".into(), Free::Never)));
    }

    #[test]
    fn a_valid_lease_or_an_online_holder_is_never_taken() {
        let mut c = Case::new(&[("a", None), ("b", None)], &["gate-2"]);
        c.leases.insert("a".into(), row("gate-1", false));
        c.leases.insert("b".into(), row("gate-1", true));
        c.online.insert("gate-1".into(), true);
        assert!(
            c.takes("gate-2").is_empty(),
            "gate-1 lost PostgreSQL, not the broker: it still runs them"
        );
        c.online.insert("gate-1".into(), false);
        assert_eq!(
            c.takes("gate-2"),
            [(
                "b".into(),
                Free::Lost {
                    from: "gate-1".into()
                }
            )]
        );
    }

    #[test]
    fn without_the_broker_an_expired_lease_is_lost() {
        let mut c = Case::new(&[("a", None)], &["gate-2"]);
        c.leases.insert("a".into(), row("gate-1", true));
        assert_eq!(
            c.takes("gate-2"),
            [(
                "a".into(),
                Free::Lost {
                    from: "gate-1".into()
                }
            )]
        );
    }

    #[test]
    fn a_node_that_comes_back_takes_nothing_back() {
        // gate-1 restarted; gate-2 took its cameras meanwhile and renews them.
        let mut c = Case::new(&[("a", None), ("b", None)], &["gate-1", "gate-2"]);
        c.leases.insert("a".into(), row("gate-2", false));
        c.leases.insert("b".into(), row("gate-2", false));
        c.online.insert("gate-2".into(), true);
        assert!(c.takes("gate-1").is_empty());
    }

    #[test]
    fn a_restarted_node_takes_its_own_rows_and_released_ones_at_once() {
        let mut c = Case::new(&[("a", None), ("b", None)], &["gate-1"]);
        c.leases.insert("a".into(), row("gate-1", false));
        c.leases.insert(
            "b".into(),
            LeaseRow {
                released: true,
                ..row("gate-2", false)
            },
        );
        c.online.insert("gate-2".into(), true);
        assert_eq!(
            c.takes("gate-1"),
            [
                ("a".into(), Free::OwnEarlierRun),
                (
                    "b".into(),
                    Free::Released {
                        from: "gate-2".into()
                    }
                )
            ]
        );
    }

    #[test]
    fn a_held_camera_counts_toward_the_share() {
        let mut c = Case::new(
            &[("a", None), ("b", None), ("c", None)],
            &["gate-1", "gate-2"],
        );
        c.held.insert("a".into());
        c.leases.insert("a".into(), row("gate-1", false));
        assert_eq!(c.takes("gate-1"), [("b".into(), Free::Never)]);
    }
}
